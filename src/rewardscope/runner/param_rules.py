"""Value rules for notebook parameters, checked by the runner before any kernel starts.

``params.check_parameters`` checks names and types; this module checks what a value means: bounds,
list lengths, choices, and every model or data spec (that an embedded name exists, that a local
directory holds a model, that a hub id is reachable). A bad value fails here in about a second with
one line naming the notebook, the parameter and what is allowed, instead of 10-20 s later, or hours
later after a sweep, inside the kernel.

Rules are keyed by parameter name: the notebooks share one vocabulary (``policy``, ``n_bootstrap``,
``reward_options`` …), so a name means the same thing in every chapter. Two kinds of checks:

* *static*: values, bounds and the syntax of specs; they hold on any machine (the profile schema tests);
* *environment*: that a spec can be loaded and a device exists here (the runner, before a kernel starts).
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

DTYPE_CHOICES = ("float32", "bfloat16", "float16", "auto")


class RuleError(ValueError):
    """A parameter value that breaks its rule; the message says what is allowed."""


# --------------------------------------------------------------------------------------------------
# Small predicates


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def int_at_least(low: int) -> Callable[[Any], None]:
    def rule(value):
        if not (_int(value) and value >= low):
            raise RuleError(f"must be an int >= {low}, got {value!r}")
    return rule


def number_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Callable[[Any], None]:
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    interval = f"{left}{low:g}, {high:g}{right}"

    def rule(value):
        ok = _number(value) and (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
        if not ok:
            raise RuleError(f"must be a finite number in {interval}, got {value!r}")
    return rule


def optional(rule: Callable[[Any], None]) -> Callable[[Any], None]:
    def check(value):
        if value is not None:
            rule(value)
    return check


def list_of(item: Callable[[Any], None], *, min_len: int = 1, what: str = "") -> Callable[[Any], None]:
    def rule(value):
        if not isinstance(value, list) or len(value) < min_len:
            raise RuleError(f"must be a list of at least {min_len} {what or 'items'}, got {value!r}")
        for i, x in enumerate(value):
            try:
                item(x)
            except RuleError as err:
                raise RuleError(f"item {i} {err}") from None
    return rule


def distinct(rule: Callable[[Any], None], *, min_len: int = 2) -> Callable[[Any], None]:
    """``rule`` (a list rule), and at least ``min_len`` distinct items (replicates crossed with each other)."""
    def check(value):
        rule(value)
        if len(value) < min_len or len(set(value)) != len(value):
            raise RuleError(f"must name at least {min_len} distinct items (every comparison crosses them), got {value!r}")
    return check


def increasing_pair(value: Any) -> None:
    """Two ints, the first smaller (chapter 1's small and big autoencoder widths)."""
    if not (isinstance(value, list) and len(value) == 2 and all(_int(v) for v in value) and 0 < value[0] < value[1]):
        raise RuleError(f"must be two increasing positive ints [small, big], got {value!r}")


def one_of(*choices: Any) -> Callable[[Any], None]:
    def rule(value):
        if value not in choices:
            raise RuleError(f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return rule


def nonempty_text(value: Any) -> None:
    if not _text(value):
        raise RuleError(f"must be a non-empty string, got {value!r}")


POSITIVE = int_at_least(1)
NON_NEGATIVE = int_at_least(0)
SEEDS = list_of(NON_NEGATIVE, what="seeds")
RATE = number_in(0, math.inf, low_open=True)
FRACTION = number_in(0, 1, low_open=True, high_open=True)


def dtype_rule(value: Any) -> None:
    if value is not None and value not in DTYPE_CHOICES:
        raise RuleError(f"must be one of {', '.join(DTYPE_CHOICES)} or null (float32), got {value!r}")


def device_rule(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not (value in ("cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit())):
        raise RuleError(f"must be 'cpu', 'cuda', 'cuda:N' or null (CUDA when available), got {value!r}")


def split_rule(value: Any) -> None:
    if not (isinstance(value, list) and len(value) == 3 and all(_number(x) and x >= 0 for x in value)):
        raise RuleError(f"must be three shares [train, validation, test] >= 0, got {value!r}")
    if value[0] <= 0 or value[2] <= 0 or abs(sum(value) - 1) > 1e-6:
        raise RuleError(f"must have train and test shares > 0 that sum with validation to 1, got {value!r}")


def trainable_rule(value: Any) -> None:
    if not (value in ("all", "head") or (_int(value) and value >= 1)):
        raise RuleError(f"must be 'all', 'head' or a number of top layers >= 1, got {value!r}")


def prompts_rule(value: Any) -> None:
    if isinstance(value, dict):
        if not value or not all(_text(k) and _text(v) for k, v in value.items()):
            raise RuleError("must map at least one name to a non-empty prompt")
        return
    list_of(nonempty_text, what="non-empty prompts")(value)


def _pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_text(v) for v in value) and value[0] != value[1]


def same_gold_pairs_rule(value: Any) -> None:
    """Chapter 3's same-gold pairs: a list of [a, b] pairs of two different RM specs (empty: none declared), or
    one pair [a, b] as the old ``same_gold_pair`` took it."""
    if not isinstance(value, list):
        raise RuleError(f"must be a list of [a, b] pairs of two different reward models, got {value!r}")
    if len(value) == 2 and all(isinstance(v, str) for v in value):
        value = [value]
    for i, item in enumerate(value):
        if not _pair(item):
            raise RuleError(f"item {i} must be a pair [a, b] of two different reward-model specs, got {item!r}")
    if len({frozenset(p) for p in value}) != len(value):
        raise RuleError(f"names one pair twice: {value!r}")


def same_gold_pair_rule(value: Any) -> None:
    """The old single pair (chapter 3): [a, b] of two different RM specs, or [] (use same_gold_pairs)."""
    if not (value == [] or _pair(value)):
        raise RuleError(f"must be [a, b], two different reward-model specs, or [] (then same_gold_pairs is used), "
                        f"got {value!r}")


def bench_candidates_rule(value: Any) -> None:
    if not isinstance(value, dict) or not value:
        raise RuleError(f"must map a dtype to [prefix, naive] candidate counts, got {value!r}")
    for dtype, counts in value.items():
        if dtype not in DTYPE_CHOICES[:3]:
            raise RuleError(f"key {dtype!r} must be a dtype: {', '.join(DTYPE_CHOICES[:3])}")
        if not (isinstance(counts, list) and len(counts) == 2 and all(_int(c) and c >= 1 for c in counts)):
            raise RuleError(f"value for {dtype!r} must be [prefix, naive] counts >= 1, got {counts!r}")


# --------------------------------------------------------------------------------------------------
# Specs: models and data

MODEL, REWARD, DATA = "model", "reward", "data"


def reward_option_names() -> set[str]:
    """The keyword arguments that ``load_reward_model`` accepts for a Hugging Face RM."""
    from ..rewards import HFRewardModel, load_reward_model

    names = set()
    for fn in (load_reward_model, HFRewardModel.__init__):
        names |= {p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - {"self", "spec", "name", "path"}


def policy_option_names() -> set[str]:
    """The keyword arguments that ``load_policy`` accepts besides the spec (device, dtype, chat_template …)."""
    from ..policy import load_policy

    return {p.name for p in inspect.signature(load_policy).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"spec"}


def _spec_syntax(value: Any, kind: str) -> None:
    if not _text(value):
        raise RuleError(f"must be a non-empty model spec, got {value!r}")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value) or "\x00" in value:
        raise RuleError(f"is not valid text: {value!r}")


def spec_rule(kind: str) -> Callable[[Any], None]:
    def rule(value):
        _spec_syntax(value, kind)
    rule.spec_kind = kind  # type: ignore[attr-defined]
    return rule


def spec_list(kind: str) -> Callable[[Any], None]:
    rule = list_of(spec_rule(kind), what="specs")
    rule.spec_kind = kind  # type: ignore[attr-defined]
    rule.spec_container = "list"  # type: ignore[attr-defined]
    return rule


def optional_spec_list(kind: str) -> Callable[[Any], None]:
    """A list of specs that may be empty (``compare_rms``: nothing to compare with)."""
    rule = list_of(spec_rule(kind), min_len=0, what="specs")
    rule.spec_kind = kind  # type: ignore[attr-defined]
    rule.spec_container = "list"  # type: ignore[attr-defined]
    return rule


def spec_dict(kind: str) -> Callable[[Any], None]:
    def rule(value):
        if not isinstance(value, dict) or not value:
            raise RuleError(f"must map at least one name to a spec, got {value!r}")
        for name, spec in value.items():
            try:
                spec_rule(kind)(spec)
            except RuleError as err:
                raise RuleError(f"entry {name!r} {err}") from None
    rule.spec_kind = kind  # type: ignore[attr-defined]
    rule.spec_container = "dict"  # type: ignore[attr-defined]
    return rule


def _options_rule(what: str, loader: str, allowed: Callable[[], set[str]],
                  checks: dict[str, Callable[[Any], None]]) -> Callable[[Any], None]:
    """A rule for ``{spec: {option: value}}``: only ``allowed()`` keys (a loader's keyword arguments), each value
    passing its check."""
    def rule(value: Any) -> None:
        if not isinstance(value, dict):
            raise RuleError(f"must map {what} specs to option mappings, got {value!r}")
        names = allowed()
        for spec, options in value.items():
            if not isinstance(options, dict):
                raise RuleError(f"entry {spec!r} must be a mapping of {loader} options, got {options!r}")
            unknown = sorted(set(options) - names)
            if unknown:
                raise RuleError(f"entry {spec!r} has unknown option(s) {', '.join(map(repr, unknown))}; "
                                f"options: {', '.join(sorted(names))}")
            for key, check in checks.items():
                if key in options:
                    try:
                        check(options[key])
                    except RuleError as err:
                        raise RuleError(f"entry {spec!r}, option {key!r} {err}") from None
    return rule


def _device_map_rule(value: Any) -> None:
    if not (value is None or _text(value) or isinstance(value, dict)):
        raise RuleError(f"must be accelerate's device map: 'auto', 'balanced', a mapping of modules to devices, or null; "
                        f"got {value!r}")


def _bool_only(value: Any) -> None:
    if not isinstance(value, bool):
        raise RuleError(f"must be true or false (a YAML bool), got {value!r}")


reward_options_rule = _options_rule("reward", "load_reward_model", reward_option_names, {
    "trust_remote_code": _bool_only, "allow_random_head": _bool_only, "dtype": dtype_rule, "device": device_rule,
    "label": optional(NON_NEGATIVE), "batch_size": POSITIVE, "architecture": optional(one_of("decoder", "encoder")),
    "chat_template": optional(nonempty_text), "output": nonempty_text, "device_map": _device_map_rule})
policy_options_rule = _options_rule("policy", "load_policy", policy_option_names, {
    "trust_remote_code": _bool_only, "dtype": dtype_rule, "device": device_rule, "chat_template": nonempty_text})


RULES: dict[str, Callable[[Any], None]] = {
    # models and data
    **{name: spec_rule(MODEL) for name in ("policy", "tuned_policy", "judge", "expert", "backbone", "decoder_backbone",
                                           "lm_labeller")},
    **{name: spec_rule(REWARD) for name in ("true_reward", "alternative_reward", "proxy", "proxy_gold", "bench_rm",
                                            "drift_rm", "pre_rm", "post_rm", "rm")},
    "reward_models": spec_list(REWARD), "roundtrip_rms": spec_list(REWARD), "compare_rms": optional_spec_list(REWARD),
    "properties": spec_dict(REWARD), "property_golds": spec_dict(REWARD),
    "prompt_source": spec_rule(DATA), "data": spec_rule(DATA),
    "reward_options": reward_options_rule, "policy_options": policy_options_rule,
    # devices and dtypes
    "device": device_rule, "dtype": dtype_rule, "sample_dtype": dtype_rule,
    # counts
    **{name: POSITIVE for name in (
        "n_eval_prompts", "n_bootstrap", "max_new_tokens", "n_layers", "n_texts", "n_eval_texts", "max_length",
        "batch_size", "sae_steps", "sae_batch_size", "n_triples", "n_random", "top_k_tokens", "n_shared_features",
        "n_divergent_features", "n_prompts", "n_restarts", "epochs", "decoder_epochs", "n_compare_restarts", "rl_steps",
        "rl_prompts_per_step", "rl_max_new_tokens", "eval_k", "n_top", "n_bootstrap_tau", "n_rewrite_pairs",
        "n_train_prompts", "n_reference", "n_best_of", "decoder_trainable", "n_probe_pairs", "n_input_probes")},
    "rl_generations": int_at_least(2),  # a group baseline needs two samples
    **{name: NON_NEGATIVE for name in ("n_judged_features", "drift_tokens", "roundtrip_tokens", "n_lm_labels", "seed",
                                       "vocab_tokens")},
    "card_dir": optional(nonempty_text),
    "n_pairs": optional(POSITIVE),
    # rates and weights
    **{name: RATE for name in ("sae_lr", "learning_rate", "decoder_learning_rate", "rl_learning_rate", "irm_alpha",
                               "margin")},
    "l1_coefficient": number_in(0, math.inf), "rl_beta": number_in(0, math.inf),
    "rl_betas": list_of(number_in(0, math.inf), what="KL weights >= 0"),
    "raw_weights": list_of(number_in(0, math.inf), what="weights >= 0"),
    # shares and quantiles
    "quantile": FRACTION, "test_fraction": FRACTION, "quantiles": list_of(FRACTION, what="quantiles in (0, 1)"),
    "tilt_kl": number_in(0, math.inf, low_open=True), "calibration_split": one_of("validation", "test"),
    # shares below the whole training set: the whole set (1) is the main study already
    "demo_fractions": list_of(number_in(0, 1, low_open=True, high_open=True), what="shares in (0, 1)"),
    "relevance_threshold": number_in(0, 1), "min_similarity": number_in(-1, 1),
    "split": split_rule, "true_threshold": optional(number_in(-math.inf, math.inf)),
    # lists of seeds and sizes
    "sae_seeds": distinct(SEEDS), "split_seeds": SEEDS,
    "rl_seeds": distinct(SEEDS, min_len=1), "dictionary_multiples": increasing_pair,
    "faithful_bugs": list_of(one_of("last_character", "accumulate_gradients", "unbounded_loss"), min_len=0,
                             what="bugs of rewardscope.irl.PAPER_BUGS"),  # the names of irl.PAPER_BUGS (a test checks)
    # choices
    "scale": one_of("default", "smoke"), "lab_scale": one_of("default", "smoke"), "method": one_of("prefix", "naive"),
    "rl_algorithm": one_of("grpo", "rloo"), "trainable": trainable_rule, "hub_split": nonempty_text,
    "prompt_column": nonempty_text, "main_prompt": nonempty_text, "hub_test_split": optional(nonempty_text),
    "prompts": prompts_rule, "bench_candidates": bench_candidates_rule,
    "same_gold_pairs": same_gold_pairs_rule, "same_gold_pair": same_gold_pair_rule,
}


def _cross_checks(values: dict[str, Any]) -> None:
    """Rules that relate two parameters of one notebook."""
    prompts, main = values.get("prompts"), values.get("main_prompt")
    if isinstance(prompts, dict) and main is not None and main not in prompts:
        raise RuleError(f"parameter 'main_prompt' must be one of the prompts' names {sorted(prompts)}, got {main!r}")
    compare, restarts = values.get("n_compare_restarts"), values.get("n_restarts")
    if _int(compare) and _int(restarts) and compare > restarts:
        raise RuleError(f"parameter 'n_compare_restarts' must be at most n_restarts = {restarts}, got {compare}")
    properties, golds = values.get("properties"), values.get("property_golds")
    if isinstance(properties, dict) and isinstance(golds, dict) and (len(properties) != 2 or set(properties) != set(golds)):
        raise RuleError(f"parameters 'properties' and 'property_golds' must name the same two properties, got "
                        f"{sorted(properties)} and {sorted(golds)}")
    k = values.get("n_reference")  # an unbiased reference needs 1/(k + 1) <= q <= k/(k + 1) (transforms.reference_reward)
    qs = [values.get("quantile"), *(values.get("quantiles") or [])] if isinstance(k, int) else []
    for q in (q for q in qs if _number(q) and 0 < q < 1):
        if not (1 / (k + 1) <= q + 1e-9 and q - 1e-9 <= k / (k + 1)):
            raise RuleError(f"parameter 'n_reference' = {k} is too few for quantile {q:g}: an unbiased reference "
                            f"needs 1/(k + 1) <= q <= k/(k + 1) (k = 19 makes 0.5, 0.85 and 0.95 exact order statistics)")
    options = values.get("reward_options")
    if isinstance(options, dict) and options:
        named = set(model_specs(values))
        stray = sorted(set(options) - named)
        if stray:
            raise RuleError(f"parameter 'reward_options' names {', '.join(map(repr, stray))}, which no model parameter "
                            f"of this notebook uses (a typo would silently drop its options); specs used: "
                            f"{', '.join(sorted(named)) or 'none'}")
    options = values.get("policy_options")
    if isinstance(options, dict) and options:
        named = set(model_specs(values, kinds=(MODEL,)))
        stray = sorted(set(options) - named)
        if stray:
            raise RuleError(f"parameter 'policy_options' names {', '.join(map(repr, stray))}, which no policy or "
                            f"backbone parameter of this notebook uses (a typo would silently drop its options); "
                            f"specs used: {', '.join(sorted(named)) or 'none'}")


def model_specs(values: dict[str, Any], kinds: tuple[str, ...] = (MODEL, REWARD)) -> list[str]:
    """Every model or reward spec named in ``values`` (in order, without duplicates); ``kinds`` narrows it."""
    specs = []
    for name, value in values.items():
        rule = RULES.get(name)
        if getattr(rule, "spec_kind", DATA) not in kinds:
            continue
        container = getattr(rule, "spec_container", None)
        items = value if container == "list" else list(value.values()) if container == "dict" else [value]
        specs += [s for s in (items if isinstance(items, list) else []) if isinstance(s, str)]
    return list(dict.fromkeys(specs))


def _strings(value: Any, path: str):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, x in enumerate(value):
            yield from _strings(x, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, x in value.items():
            yield from _strings(k, f"{path} key")
            yield from _strings(x, f"{path}[{k!r}]")


# Where one notebook asks more of a shared name than the others (chapter 2's intervals are over RL seeds).
NOTEBOOK_RULES: dict[str, dict[str, Callable[[Any], None]]] = {
    "02_irl_extraction": {"rl_seeds": distinct(SEEDS)},
}


def check_values(values: dict[str, Any], notebook: str | None = None) -> None:
    """Static checks of every value: text is valid, numbers are finite, each rule holds (the shared rule, or the
    ``notebook``'s own where it has one). Raises RuleError naming the parameter."""
    rules = {**RULES, **NOTEBOOK_RULES.get(notebook or "", {})}
    for name, value in values.items():
        for where, text in _strings(value, name):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
                raise RuleError(f"parameter {name!r} holds text that is not valid UTF-8 at {where}: {text!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise RuleError(f"parameter {name!r} must be finite, got {value!r}")
        rule = rules.get(name)
        if rule is not None:
            try:
                rule(value)
            except RuleError as err:
                raise RuleError(f"parameter {name!r} {err}") from None
    _cross_checks(values)


# --------------------------------------------------------------------------------------------------
# Environment: can each spec be loaded here, does the device exist


def caller_path(text: str) -> Path:
    """A local path as the user typed it (:func:`rewardscope.zoo.local_path`: relative to the caller's folder)."""
    from ..zoo import local_path

    return local_path(text)


def _hub_reachable(repo_id: str, revision: str | None, repo_type: str) -> str | None:
    """None when the hub repo is in the local cache or reachable; else why not, in a few words."""
    from huggingface_hub import HfApi, constants, snapshot_download

    try:
        snapshot_download(repo_id, revision=revision, repo_type=repo_type, local_files_only=True,
                          allow_patterns=["*.json"])
        return None
    except Exception:  # noqa: BLE001 - not cached: ask the hub below
        pass
    if constants.HF_HUB_OFFLINE:
        return "it is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
    try:
        HfApi().repo_info(repo_id, revision=revision, repo_type=repo_type, timeout=10)
        return None
    except Exception as err:  # noqa: BLE001 - the hub raises many types; the name says enough
        return f"the hub did not answer ({type(err).__name__})"


def _decoder_without_template(path: Path) -> bool:
    """Whether a local sequence-classification RM is a decoder whose tokenizer has no chat template."""
    import json

    from ..hf import config_architecture, read_config

    try:
        config = read_config(path)
        if config_architecture(config) != "decoder":
            return False
    except (OSError, ValueError):
        return False
    if not any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        return False
    tokenizer_config = path / "tokenizer_config.json"
    has_template = (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file()
    if tokenizer_config.is_file():
        try:
            has_template = has_template or bool(json.loads(tokenizer_config.read_text()).get("chat_template"))
        except ValueError:
            return False
    return not has_template


def check_spec(spec: str, kind: str, options: dict | None = None) -> None:
    """That ``spec`` names something loadable here, without loading or building it. Raises RuleError."""
    from ..data import PROMPT_SOURCES
    from ..rewards import reward_kinds
    from ..zoo import _HUB_ID, SIDECAR, embedded_names, listed_names

    options = options or {}
    if kind == REWARD and spec in reward_kinds():
        return
    if kind == DATA:
        _check_data(spec)
        return
    if kind != DATA and spec in embedded_names():
        return
    path = caller_path(spec)
    if path.exists():
        if kind == DATA:
            return
        if not path.is_dir() or not ((path / "config.json").is_file() or (path / SIDECAR).is_file()):
            raise RuleError(f"{spec!r} is not a Hugging Face model directory (no config.json in {path})")
        if kind == REWARD and not options.get("chat_template") and _decoder_without_template(path):
            raise RuleError(f"{spec!r} is a decoder reward model whose tokenizer has no chat template; give one in "
                            "reward_options (chat_template: hh, or a Jinja template over `messages`)")
        return
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        repo_id, _, revision = spec.partition("@")
        why = _hub_reachable(repo_id, revision or None, "dataset" if kind == DATA else "model")
        if why:
            raise RuleError(f"hub {'data set' if kind == DATA else 'model'} {spec!r} cannot be fetched: {why}")
        return
    if spec.startswith((".", "/", "~")) or os.sep in spec and not _HUB_ID.match(spec):
        raise RuleError(f"local path {str(path)!r} does not exist (relative paths start at {caller_path('.')})")
    allowed = {MODEL: f"an embedded name ({listed_names()})",
               REWARD: f"a reward rule ({', '.join(reward_kinds())}), an embedded name",
               DATA: f"a prompt source ({', '.join(PROMPT_SOURCES)})"}[kind]
    raise RuleError(f"{spec!r} is not {allowed}, an existing local path (relative paths start at {caller_path('.')}) "
                    "or a hub id org/name")


def _check_data(spec: str) -> None:
    """A data spec: what :func:`rewardscope.data.resolve_data` accepts, and for a hub id, reachable."""
    from ..data import DataSpecError, resolve_data

    if spec == "lab":
        return
    try:
        source = resolve_data(spec)
    except DataSpecError as err:
        raise RuleError(str(err)) from None
    if source.kind == "hub":
        why = _hub_reachable(source.location, source.revision, "dataset")
        if why:
            raise RuleError(f"hub data set {source.location!r} cannot be fetched: {why}")


def check_environment(values: dict[str, Any]) -> None:
    """Environment checks: every spec can be loaded here, and the device exists. Raises RuleError."""
    options = values.get("reward_options") or {}
    for name, value in values.items():
        rule = RULES.get(name)
        kind = getattr(rule, "spec_kind", None)
        if kind is None:
            continue
        container = getattr(rule, "spec_container", None)
        items = value if container == "list" else list(value.values()) if container == "dict" else [value]
        for spec in items:
            if name == "data" and spec == "lab":
                continue
            try:
                check_spec(spec, kind, options.get(spec))
            except RuleError as err:
                raise RuleError(f"parameter {name!r}: {err}") from None
    devices = [("device", values.get("device"))] + [
        (f"{param}[{spec!r}].device", o.get("device")) for param in ("reward_options", "policy_options")
        for spec, o in (values.get(param) or {}).items() if isinstance(o, dict)]
    for name, device in devices:
        if isinstance(device, str) and device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise RuleError(f"parameter {name!r} is {device!r} but CUDA is not available here; use -p device cpu "
                                "(or null)")
