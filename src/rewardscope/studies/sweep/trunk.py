"""Shared-trunk vocabulary sweeps: reward models that share frozen bottom layers run them once.

The embedded lab's decoder RMs fine-tune only the top layers of one backbone (``train.BTConfig.trainable``),
so their embeddings and bottom layers hold identical weights. :func:`shared_depth` finds how many leading
layers (and the embeddings) several models share by comparing the tensors themselves (never names);
:class:`Engine` then computes the prompt prefix and every candidate through those layers once and runs only
each model's own top layers, final norm and head.

The engine is a plain re-implementation of a Llama-style decoder layer (RMSNorm, rotary attention with
grouped keys/values, SiLU-gated MLP; the model's own rotary embedding module gives cos/sin) tuned for the
sweep's shape: one shared prefix, candidates of ``1 + len(suffix)`` tokens, a score read at the last
position. It fuses the q/k/v and gate/up projections into one matmul each, attends to the prefix
keys/values without a per-candidate copy, and at the last layer computes the query, output projection and
MLP of the last position only (the only one the head reads). It runs on the architectures in
:data:`MODEL_TYPES` and is checked against each model's own full forward before a sweep uses it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

VERSION = 1  # of the engine's arithmetic: part of the shared-trunk cache key
MODEL_TYPES = ("llama", "mistral", "qwen2")
"""Architectures (``config.model_type``) whose decoder layer the engine reproduces."""

_CONFIG_IGNORED = {"_name_or_path", "architectures", "id2label", "label2id", "num_labels", "pad_token_id",
                   "problem_type", "torch_dtype", "dtype", "transformers_version", "finetuning_task", "_commit_hash",
                   "bos_token_id", "eos_token_id", "tie_word_embeddings", "use_cache", "output_attentions",
                   "output_hidden_states", "return_dict", "_attn_implementation_autoset", "_attn_implementation",
                   "_attn_implementation_internal", "_experts_implementation"}
# Fields that cannot change what the trunk computes (labels, ids, bookkeeping). Everything else must match.


def unsupported(model) -> str:
    """Why the engine cannot run ``model`` ("" when it can)."""
    import torch

    config = model.config
    if getattr(config, "model_type", None) not in MODEL_TYPES:
        return f"model_type {getattr(config, 'model_type', None)!r} is not one of {', '.join(MODEL_TYPES)}"
    base = getattr(model, "base_model", None)
    if base is None or not all(hasattr(base, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
        return f"{type(model).__name__} has no embed_tokens/layers/norm/rotary_emb trunk"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"hidden_act {config.hidden_act!r} is not silu"
    if getattr(config, "use_sliding_window", False) or (config.model_type == "mistral" and config.sliding_window):
        return "sliding-window attention"
    head = getattr(model, "score", None)
    if not isinstance(head, torch.nn.Linear):
        return f"{type(model).__name__} has no linear .score head"
    return ""


def _config_signature(model) -> str:
    config = {k: v for k, v in model.config.to_dict().items() if k not in _CONFIG_IGNORED}
    return hashlib.sha256(repr(sorted(config.items(), key=lambda kv: kv[0])).encode()).hexdigest()[:16]


def _same_module(a, b) -> bool:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k]) for k in sa)


def shared_depth(models: Sequence[Any]) -> int:
    """How many leading decoder layers all ``models`` share, weights compared exactly (0: none).

    Sharing needs the same architecture and settings (configs equal but for labels and ids), identical
    embeddings and rotary buffers, then counts the leading layers whose tensors are all equal. Names,
    paths and metadata play no part.
    """
    if len(models) < 2 or any(unsupported(m) for m in models):
        return 0
    first = models[0]
    signature = _config_signature(first)
    base = first.base_model
    for other in models[1:]:
        if _config_signature(other) != signature:
            return 0
        if not (_same_module(base.embed_tokens, other.base_model.embed_tokens)
                and _same_module(base.rotary_emb, other.base_model.rotary_emb)):
            return 0
    depth = 0
    for i, layer in enumerate(base.layers):
        if not all(_same_module(layer, other.base_model.layers[i]) for other in models[1:]):
            break
        depth += 1
    return depth


def weights_digest(module) -> str:
    """A cheap content hash of a module's tensors (names, shapes, sums and a few values): a sweep's cache key, and
    here a first pass that :func:`shared_depth` confirms exactly."""
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            flat = tensor.detach().reshape(-1)
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            if flat.numel() and flat.is_floating_point():
                digest.update(np.float64(flat.sum(dtype=torch.float64).item()).tobytes())
                digest.update(flat[:8].double().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def fingerprints(model) -> tuple[str, list[str]] | None:
    """``(architecture and embeddings, [one digest per layer])`` of a model the engine can run, else None.

    Two models whose first ``n`` layer digests (and first element) agree probably share those layers;
    :func:`shared_depth` decides exactly. Used to group models loaded one at a time.
    """
    if unsupported(model):
        return None
    base = model.base_model
    head = (f"{_config_signature(model)}:{weights_digest(base.embed_tokens)}:{weights_digest(base.rotary_emb)}:"
            f"{next(model.parameters()).dtype}:{next(model.parameters()).device}")
    return head, [weights_digest(layer) for layer in base.layers]


def common_depth(a: tuple[str, list[str]] | None, b: tuple[str, list[str]] | None) -> int:
    """Leading layers that two :func:`fingerprints` agree on (0 when either is None or the embeddings differ)."""
    if a is None or b is None or a[0] != b[0]:
        return 0
    depth = 0
    for x, y in zip(a[1], b[1]):
        if x != y:
            break
        depth += 1
    return depth


def _rms(x, weight, eps: float):
    import torch

    dtype = x.dtype
    if dtype == torch.float32:  # one fused kernel; the same arithmetic as transformers' RMSNorm in float32
        return torch.nn.functional.rms_norm(x, weight.shape, weight, eps)
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(dtype)


def _rotate(x, cos, sin):
    """Rotary embedding of ``x`` [B, S, heads, D] with cos/sin [S, 1, D] (transformers' rotate_half form)."""
    import torch

    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _residual(h, x, weight, bias):
    """``h + x @ weight.T (+ bias)`` with the addition done by the matmul (one pass less over ``h``)."""
    import torch

    batch, length, width = h.shape
    out = torch.addmm(h.reshape(-1, width), x.reshape(-1, x.shape[-1]), weight.t()).view(batch, length, width)
    return out if bias is None else out + bias


class _Layer:
    """The fused weights of one decoder layer in the compute dtype."""

    def __init__(self, layer, dtype):
        import torch

        attn, mlp = layer.self_attn, layer.mlp

        def cat(*linears):
            weight = torch.cat([m.weight.detach() for m in linears]).to(dtype).contiguous()
            bias = (torch.cat([m.bias.detach() for m in linears]).to(dtype)
                    if all(m.bias is not None for m in linears) else None)
            if bias is None and any(m.bias is not None for m in linears):
                bias = torch.cat([m.bias.detach() if m.bias is not None else torch.zeros(m.out_features)
                                  for m in linears]).to(dtype)
            return weight, bias

        self.heads = attn.config.num_attention_heads
        self.kv_heads = attn.config.num_key_value_heads
        self.dim = attn.head_dim
        self.scaling = float(attn.scaling)
        self.wqkv, self.bqkv = cat(attn.q_proj, attn.k_proj, attn.v_proj)
        if math.frexp(self.scaling)[0] == 0.5:  # a power of two (head_dim 64: 1/8): folding it into q is exact
            rows = self.heads * self.dim
            self.wqkv[:rows] *= self.scaling
            if self.bqkv is not None:
                self.bqkv[:rows] *= self.scaling
            self.scaling = 1.0
        self.wo, self.bo = cat(attn.o_proj)
        self.wgu, self.bgu = cat(mlp.gate_proj, mlp.up_proj)
        self.wd, self.bd = cat(mlp.down_proj)
        self.n1 = (layer.input_layernorm.weight.detach().to(dtype), float(layer.input_layernorm.variance_epsilon))
        self.n2 = (layer.post_attention_layernorm.weight.detach().to(dtype),
                   float(layer.post_attention_layernorm.variance_epsilon))

    def __call__(self, h, cos, sin, prefix, last_only: bool = False):
        """``h`` [B, S, d] -> (new h, (k, v) of this layer); ``last_only``: the last position's output only."""
        import torch
        import torch.nn.functional as F

        batch, length, _ = h.shape
        heads, kv_heads, dim = self.heads, self.kv_heads, self.dim
        groups = heads // kv_heads
        qkv = F.linear(_rms(h, *self.n1), self.wqkv, self.bqkv)
        v = qkv[..., (heads + kv_heads) * dim:].view(batch, length, kv_heads, dim)
        queries = 1 if last_only else length
        first = length - queries  # own index of the first query
        if last_only:
            q = _rotate(qkv[:, first:, :heads * dim].view(batch, 1, heads, dim), cos[first:], sin[first:])
            k = _rotate(qkv[..., heads * dim:(heads + kv_heads) * dim].view(batch, length, kv_heads, dim), cos, sin)
        else:  # queries and keys rotated in one pass
            qk = _rotate(qkv[..., :(heads + kv_heads) * dim].view(batch, length, heads + kv_heads, dim), cos, sin)
            q, k = qk[:, :, :heads], qk[:, :, heads:]
        # rows ordered (batch, query, group): query head h reads key head h // groups, as repeat_kv
        qh = q.view(batch, queries, kv_heads, groups, dim).permute(2, 0, 1, 3, 4).reshape(kv_heads, batch,
                                                                                             queries * groups, dim)
        kh = k.permute(2, 0, 3, 1)  # [H_kv, B, D, S]
        vh = v.permute(2, 0, 1, 3)  # [H_kv, B, S, D]
        own = torch.matmul(qh, kh)  # [H_kv, B, Q*g, S]
        q_pos = first + torch.arange(queries, device=h.device).repeat_interleave(groups)[:, None]
        blocked = torch.arange(length, device=h.device)[None, :] > q_pos  # causal among own positions
        own = own.masked_fill(blocked, float("-inf"))
        if prefix is None:
            scores = own
        else:
            prefix_k = prefix[0]
            shared = torch.matmul(qh.reshape(kv_heads, batch * queries * groups, dim), prefix_k.transpose(1, 2))
            scores = torch.cat([shared.view(kv_heads, batch, queries * groups, -1), own], dim=-1)
        if self.scaling != 1.0:
            scores = scores * self.scaling
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(h.dtype)
        offset = 0 if prefix is None else prefix[0].shape[1]
        out = torch.matmul(probs[..., offset:], vh)
        if prefix is not None:
            out = out + torch.matmul(probs[..., :offset].reshape(kv_heads, batch * queries * groups, offset),
                                     prefix[1]).view(kv_heads, batch, queries * groups, dim)
        out = out.view(kv_heads, batch, queries, groups, dim).permute(1, 2, 0, 3, 4).reshape(batch, queries,
                                                                                              heads * dim)
        if last_only:
            h = h[:, first:]
        h = _residual(h, out, self.wo, self.bo)
        gate, up = F.linear(_rms(h, *self.n2), self.wgu, self.bgu).chunk(2, dim=-1)
        act = F.silu(gate)
        act *= up
        h = _residual(h, act, self.wd, self.bd)
        return h, ((kh.permute(0, 1, 3, 2)[:, 0].contiguous(), vh[:, 0].contiguous()) if batch == 1 else None)


class Engine:
    """Scores candidates of one prompt for a group of models sharing their bottom ``depth`` layers.

    ``models``: the HF sequence-classification models (trunk + ``.score`` head); ``labels``: the score
    column each reads. Build with the models' weights in ``dtype``; :meth:`prefix` records a prompt's
    keys/values, :meth:`score` returns ``[len(models), B]`` scores of continuations ``[B, S]``.
    """

    def __init__(self, models: Sequence[Any], labels: Sequence[int], depth: int, dtype):
        base = models[0].base_model
        self.dtype = dtype
        self.device = next(models[0].parameters()).device
        self.depth = depth
        self.n_layers = len(base.layers)
        self.embed = base.embed_tokens.weight.detach().to(dtype)
        self.rotary = base.rotary_emb
        self.trunk = [_Layer(layer, dtype) for layer in base.layers[:depth]]
        self.tops = [[_Layer(layer, dtype) for layer in m.base_model.layers[depth:]] for m in models]
        self.norms = [(m.base_model.norm.weight.detach().to(dtype), float(m.base_model.norm.variance_epsilon))
                      for m in models]
        self.heads = [(m.score.weight.detach()[int(label)].to(dtype),
                       None if m.score.bias is None else m.score.bias.detach()[int(label)].to(dtype))
                      for m, label in zip(models, labels)]
        self._prefix: tuple[int, list, list[list]] | None = None

    def _rope(self, start: int, length: int):
        import torch

        positions = torch.arange(start, start + length, device=self.device)[None]
        probe = self.embed[:1].unsqueeze(0)
        cos, sin = self.rotary(probe, positions)
        return cos[0].to(self.dtype)[:, None, :], sin[0].to(self.dtype)[:, None, :]

    def prefix(self, ids: Sequence[int]) -> None:
        """Run the prompt prefix once: the trunk's keys/values, then each model's own top layers'."""
        import torch

        with torch.inference_mode():
            tokens = torch.tensor([list(ids)], device=self.device)
            cos, sin = self._rope(0, len(ids))
            h = self.embed[tokens]
            trunk_kv = []
            for layer in self.trunk:
                h, kv = layer(h, cos, sin, None)
                trunk_kv.append(kv)
            tops_kv = []
            for top in self.tops:
                x, kvs = h, []
                for layer in top:
                    x, kv = layer(x, cos, sin, None)
                    kvs.append(kv)
                tops_kv.append(kvs)
        self._prefix = (len(ids), trunk_kv, tops_kv)

    def score(self, continuations) -> np.ndarray:
        """Scores ``[len(models), B]`` (float64) of ``continuations`` [B, S] after the recorded prefix."""
        import torch
        import torch.nn.functional as F

        if self._prefix is None:
            raise RuntimeError("record a prefix first")
        offset, trunk_kv, tops_kv = self._prefix
        last = self.n_layers - 1
        with torch.inference_mode():
            tokens = continuations.to(self.device)
            cos, sin = self._rope(offset, tokens.shape[1])
            h = self.embed[tokens]
            for i, layer in enumerate(self.trunk):
                h, _ = layer(h, cos, sin, trunk_kv[i], last_only=i == last)
            out = []
            for top, kvs, norm, (weight, bias) in zip(self.tops, tops_kv, self.norms, self.heads):
                x = h
                for j, layer in enumerate(top):
                    x, _ = layer(x, cos, sin, kvs[j], last_only=self.depth + j == last)
                final = _rms(x[:, -1], *norm)
                logits = F.linear(final, weight[None], None if bias is None else bias[None])[:, 0]
                out.append(logits.float().cpu().numpy().astype(np.float64))
        return np.stack(out)
