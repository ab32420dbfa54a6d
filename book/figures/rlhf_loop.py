"""Draw the introduction's figure: the RLHF loop and where each of the five studies looks into it.

Run ``python book/figures/rlhf_loop.py`` to rewrite ``book/figures/rlhf_loop.svg`` (committed, so the
book build needs no plotting).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

BOXES = {  # name: (x, y, label)
    "pairs": (0.05, 0.72, "preference pairs\n$(x,\\ y^+,\\ y^-)$"),
    "rm": (0.40, 0.72, "reward model\n$r(x, y)$"),
    "rl": (0.75, 0.72, "RL: maximise $r$\n$-\\ \\beta\\,$KL to $\\pi_0$"),
    "base": (0.40, 0.22, "base policy $\\pi_0$"),
    "tuned": (0.75, 0.22, "tuned policy $\\pi$"),
}
ARROWS = [("pairs", "rm", "Bradley–Terry\ntraining"), ("rm", "rl", "score answers"), ("rl", "tuned", "update"),
          ("base", "tuned", "start from")]
STUDIES = [  # (x, y, number, text, colour)
    (0.40, 0.93, "3", "vocabulary sweep: score every token", "#d95f02"),
    (-0.03, 0.45, "4", "SEAL: imprint, resistance,\nrobustness (reward model\nvs its preference data)", "#7570b3"),
    (0.45, 0.47, "5", "transform and combine\nrewards: $\\log\\sigma(r - r_{ref})$", "#e7298a"),
    (0.90, 0.22, "1", "implicit reward model:\nSAEs on activations", "#1b9e77"),
    (0.45, 0.02, "2", "inverse RL: read a reward back\nfrom $\\pi$ vs $\\pi_0$", "#66a61e"),
]


def draw(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 4.6))
    ax.set_xlim(-0.08, 1.08)
    ax.set_ylim(-0.08, 1.02)
    ax.axis("off")
    for x, y, label in BOXES.values():
        ax.add_patch(FancyBboxPatch((x - 0.11, y - 0.08), 0.22, 0.16, boxstyle="round,pad=0.01", fc="#f2f2f2",
                                    ec="#444444", lw=1.2))
        ax.text(x, y, label, ha="center", va="center", fontsize=10)
    for a, b, label in ARROWS:
        (xa, ya, _), (xb, yb, _) = BOXES[a], BOXES[b]
        horizontal = abs(ya - yb) < 1e-9
        start = (xa + 0.115, ya) if horizontal else (xa, ya - 0.085)
        end = (xb - 0.115, yb) if horizontal else (xb, yb + 0.085)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, lw=1.3, color="#444444"))
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        if horizontal:
            ax.text(mx, my - 0.03, label, ha="center", va="top", fontsize=8, color="#444444")
        else:
            ax.text(mx + 0.015, my, label, ha="left", va="center", fontsize=8, color="#444444")
    for x, y, number, text, colour in STUDIES:
        ax.text(x, y, f" {number} ", ha="center", va="center", fontsize=10, fontweight="bold", color="white",
                bbox={"boxstyle": "circle,pad=0.25", "fc": colour, "ec": colour})
        ax.text(x + 0.035, y, text, ha="left", va="center", fontsize=8.5, color=colour)
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


if __name__ == "__main__":
    draw(Path(__file__).with_suffix(".svg"))
