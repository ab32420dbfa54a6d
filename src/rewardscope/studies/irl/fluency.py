"""Fluency: the perplexity of responses under a reference language model.

RLHF can raise a reward by drifting into text that the starting model finds unlikely (repetition,
broken grammar, reward-hacking phrases). The paper on reward extraction by inverse RL (Joselowitz et
al. 2024) checks this with benchmark accuracy; a cheap proxy is the perplexity of each response
under the *base* policy, conditioned on its prompt:

    PPL(y | x) = exp( −(1/|y|) Σ_t log p_base(y_t | chat(x), y_<t) )

where chat(x) is the prompt rendered by the policy's own chat template up to the assistant header
(the ids the policy sampled from), and y the response's own token ids. The end-of-turn token is not
scored: sampled answers are usually cut at a token budget, not ended by the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ... import hf


def _texts(name: str, values, n: int | None = None) -> list[str]:
    if isinstance(values, str | bytes):
        raise ValueError(f"{name} must be a sequence of strings, not a single string")
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty; pass at least one (prompt, response) pair")
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise ValueError(f"{name}[{bad}] is {type(values[bad]).__name__}; {name} must be strings")
    if n is not None and len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but prompts has {n}; they must pair up")
    return values


def perplexity(policy, prompts: Sequence[str], responses: Sequence[str], *, batch_size: int = 16,
               policy_options: Mapping | None = None) -> np.ndarray:
    """Perplexity of each response given its prompt under ``policy`` (a reference LM, usually the base policy).

    Parameters
    ----------
    policy : a :class:`rewardscope.policy.Policy` or a spec for :func:`rewardscope.load_policy`.
    prompts, responses : n user messages and the n responses to score, paired by position.
    batch_size : sequences per forward pass (right-padded; padding never changes a score).
    policy_options : when ``policy`` is a spec, keyword arguments of :func:`rewardscope.load_policy` (e.g.
        ``{"chat_template": "plain"}`` for a base LM without a template); a loaded Policy takes none.

    Returns
    -------
    np.ndarray of shape [n]: exp of the mean negative log-likelihood of the response's tokens, each
    predicted from the chat-templated prompt and the response tokens before it. NaN for an empty
    response (no tokens to score).

    Examples
    --------
    >>> ppl = perplexity("tiny-llama", ["Hello", "Hi"], ["How are you?", ""])
    >>> bool(ppl[0] > 1.0), bool(np.isnan(ppl[1]))
    (True, True)
    """
    import torch

    from ...policy import Policy, load_policy

    prompts = _texts("prompts", prompts)
    responses = _texts("responses", responses, len(prompts))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(policy, Policy) and policy_options:
        raise ValueError("policy_options are for a policy spec; this Policy is loaded already")
    if not isinstance(policy, Policy):
        policy = load_policy(policy, **dict(policy_options or {}))
    tokenizer, model = policy.tokenizer, policy.model
    # (prompt ids ending with the assistant header, response ids): exactly what the policy sampled after
    pieces = [(hf.chat_ids(tokenizer, p), tokenizer(r, add_special_tokens=False).input_ids)
              for p, r in zip(prompts, responses)]
    limit = getattr(model.config, "max_position_embeddings", None)
    longest = max(len(a) + len(b) for a, b in pieces)
    if limit is not None and longest > limit:
        raise ValueError(f"a (prompt, response) pair has {longest} tokens, more than the model's context of {limit}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = np.full(len(pieces), np.nan)
    order = [i for i in np.argsort([len(a) + len(b) for a, b in pieces], kind="stable") if pieces[i][1]]
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        sequences = [pieces[i][0] + pieces[i][1] for i in rows]
        width = max(len(s) for s in sequences)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, seq in enumerate(sequences):  # right padding: causal attention never sees the pads
            input_ids[row, :len(seq)] = torch.as_tensor(seq)
            mask[row, :len(seq)] = 1
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(policy.device), attention_mask=mask.to(policy.device)).logits
        for row, i in enumerate(rows):
            n_prompt, target = len(pieces[i][0]), torch.as_tensor(pieces[i][1], device=logits.device)
            # the logits at position t predict token t + 1
            log_probs = torch.log_softmax(logits[row, n_prompt - 1:n_prompt - 1 + len(target)].float(), dim=-1)
            nll = -log_probs.gather(1, target[:, None]).mean()
            out[i] = float(torch.exp(nll))
    return out
