"""Transformers vision-language models with action tokens (OpenVLA style) as OPD policies.

A model directory on local disk is loaded with the Auto classes (`AutoModelForImageTextToText`; checkpoints that
carry their own modeling code, as OpenVLA's do, through their `auto_map` with `trust_remote_code`). Actions are
the last 256 ids of the output vocabulary before `action_vocab_offset` padding ids, bin b being id
`end - 1 - b` as in OpenVLA's ActionTokenizer. The prompt is OpenVLA's template. Normalisation statistics come
from the checkpoint (`dataset_statistics.json` or `config.norm_stats`, chosen by `unnorm_key`).

Decoding is `autoregressive` (dimension d conditioned on the bins of earlier dimensions; sampled with a KV cache,
see hf_decoding.py; teacher-forced in one pass when scoring stored actions) or `parallel` (OpenVLA-OFT style:
`chunk_size * D` placeholder tokens scored in one pass).
Nothing is ever downloaded: every load passes `local_files_only=True` (importing this module changes nothing).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from opd_core.config import OPENVLA_PROMPT
from opd_core.envs.base import Observation
from opd_core.errors import CheckpointError
from opd_core.policies.base import Policy, sample_bins
from opd_core.policies.hf_decoding import full_sequence, sample_with_cache, supports_batched_cache, takes_position_ids
from opd_core.tokenizer import NUM_BINS, ActionTokenizer

SETTINGS_FILE = "opd_vla.json"
"""Optional file in a model directory with HFVLASettings fields, so a checkpoint carries its own conventions."""


@dataclass
class HFVLASettings:
    """How to read a transformers VLA. Fields mirror RunConfig's `hf_*` fields (documented there), plus the two
    paths below."""

    model_dir: str = ""
    """Local directory of the transformers model (config.json, weights, processor files)."""
    unnorm_key: str = ""
    action_vocab_offset: int = 0
    chunk_size: int = 1
    decoding: str = "autoregressive"
    prompt_template: str = OPENVLA_PROMPT
    dtype: str = "auto"
    trust_remote_code: bool = False
    lora_rank: int = 0
    lora_target: str = r".*language_model.*\.(q_proj|v_proj)"
    """Regex of modules that get LoRA (a plain ['q_proj','v_proj'] would also hit the vision tower)."""
    gradient_checkpointing: bool = False
    kv_cache: str = "auto"
    """Autoregressive sampling with past_key_values: on, off, or auto (on for transformers' own classes; remote
    code such as OpenVLA's, whose cached step takes one query at a time, decodes without it)."""
    base_model_dir: str = ""
    """LoRA runs: the frozen base the adapters apply to (recorded for exact resume)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HFVLASettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def is_transformers_dir(path: str | Path) -> bool:
    return (Path(path) / "config.json").is_file() and not (Path(path) / "meta.json").is_file()


def _torch_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _load_model(model_dir: Path, settings: HFVLASettings, dtype: torch.dtype):
    from transformers import AutoConfig, AutoModelForImageTextToText
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    kwargs = {"local_files_only": True, "trust_remote_code": settings.trust_remote_code}
    config = AutoConfig.from_pretrained(model_dir, **kwargs)
    auto_map = getattr(config, "auto_map", None) or {}
    legacy = auto_map.get("AutoModelForVision2Seq")  # OpenVLA's remote code registers this removed Auto class
    if settings.trust_remote_code and legacy and "AutoModelForImageTextToText" not in auto_map:
        model_class = get_class_from_dynamic_module(legacy, str(model_dir), local_files_only=True)
        return model_class.from_pretrained(model_dir, dtype=dtype, **kwargs)
    return AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype, **kwargs)


def read_action_statistics(model_dir: Path, unnorm_key: str) -> ActionTokenizer:
    """q01/q99 (and OpenVLA's per-dimension normalisation mask) from a checkpoint directory."""
    stats_file = model_dir / "dataset_statistics.json"
    if stats_file.is_file():
        stats = json.loads(stats_file.read_text())
    else:
        stats = json.loads((model_dir / "config.json").read_text()).get("norm_stats") or {}
    if not stats:
        raise CheckpointError(f"{model_dir} has no action statistics (dataset_statistics.json or config norm_stats)")
    if not unnorm_key:
        if len(stats) > 1:
            raise CheckpointError(f"{model_dir} holds statistics for {sorted(stats)}: set hf_unnorm_key to one")
        unnorm_key = next(iter(stats))
    if unnorm_key not in stats:
        raise CheckpointError(f"unnorm_key {unnorm_key!r} not in {model_dir}; choose one of {sorted(stats)}")
    action = stats[unnorm_key]["action"]
    mask = action.get("mask")
    return ActionTokenizer(
        tuple(action["q01"]), tuple(action["q99"]), NUM_BINS, tuple(bool(m) for m in mask) if mask is not None else None
    )


class TransformersVLA(Policy):
    kind = "transformers"

    def __init__(self, model, processor, tokenizer: ActionTokenizer, settings: HFVLASettings):
        super().__init__()
        self.model = model
        self.processor = processor
        self.tokenizer = tokenizer
        self.settings = settings
        self.chunk_size = settings.chunk_size
        text_tokenizer = getattr(processor, "tokenizer", processor)
        text_tokenizer.padding_side = "left"  # prompts end at the same position, so action tokens line up
        if text_tokenizer.pad_token is None:
            text_tokenizer.pad_token = text_tokenizer.eos_token or text_tokenizer.unk_token
        vocab = model.get_output_embeddings().weight.shape[0]
        self.action_end = vocab - settings.action_vocab_offset
        if self.action_end < NUM_BINS:
            raise CheckpointError(f"output vocabulary of {vocab} ids cannot hold {NUM_BINS} action tokens")

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model_dir: str | Path, settings: HFVLASettings, device: str = "cpu") -> TransformersVLA:
        from transformers import AutoProcessor

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise CheckpointError(f"not a transformers model directory (no config.json): {model_dir}")
        settings = _merge_settings(model_dir, settings)
        tokenizer = read_action_statistics(model_dir, settings.unnorm_key)
        dtype = _torch_dtype(settings.dtype, device)
        try:
            model = _load_model(model_dir, settings, dtype)
            processor = AutoProcessor.from_pretrained(
                model_dir, local_files_only=True, trust_remote_code=settings.trust_remote_code
            )
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load a transformers VLA from {model_dir}: {exc}") from exc
        policy = cls(model.to(device), processor, tokenizer, settings)
        policy._prepare_training()
        return policy

    def _prepare_training(self) -> None:
        if self.settings.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        if self.settings.lora_rank > 0:
            from peft import LoraConfig, get_peft_model

            if not self.settings.base_model_dir:
                self.settings.base_model_dir = self.settings.model_dir
            lora = LoraConfig(
                r=self.settings.lora_rank,
                lora_alpha=2 * self.settings.lora_rank,
                target_modules=self.settings.lora_target,
                lora_dropout=0.0,
            )
            self.model = get_peft_model(self.model, lora)

    def arch_config(self) -> dict[str, Any]:
        return asdict(self.settings)

    # -- scoring ------------------------------------------------------------------------------------
    def _prompts(self, obs: Observation) -> list[str]:
        return [self.settings.prompt_template.format(instruction=text.lower()) for text in obs.instructions]

    def _equal_length_groups(self, obs: Observation) -> list[np.ndarray] | None:
        """Indices of queries whose prompts have the same length, when the model cannot take left padding (its
        forward has no position_ids, as OpenVLA's: padding would shift positions and, since it inserts the image
        after the first token, move <BOS> behind the image). Each group is then batched without padding."""
        if takes_position_ids(self.model):
            return None
        text_tokenizer = getattr(self.processor, "tokenizer", self.processor)
        groups: dict[int, list[int]] = {}
        for i, ids in enumerate(text_tokenizer(self._prompts(obs))["input_ids"]):
            groups.setdefault(len(ids), []).append(i)
        return [np.array(index) for index in groups.values()] if len(groups) > 1 else None

    def _per_group(self, obs: Observation, fn):
        """fn(index, part) on each equal-length group (index None: the whole batch at once), reassembled in the
        queries' order (tensors or tuples of them)."""
        groups = self._equal_length_groups(obs)
        if groups is None:
            return fn(None, obs)
        parts = [fn(torch.from_numpy(index), obs.take(index)) for index in groups]
        order = torch.from_numpy(np.argsort(np.concatenate(groups))).to(self.device)
        if isinstance(parts[0], tuple):
            return tuple(torch.cat([p[k] for p in parts])[order] for k in range(len(parts[0])))
        return torch.cat(parts)[order]

    def _inputs(self, obs: Observation) -> dict[str, torch.Tensor]:
        prompts = self._prompts(obs)
        images = list(obs.image)
        batch = self.processor(text=prompts, images=images, return_tensors="pt", padding=True)
        dtype = next(self.model.parameters()).dtype
        out = {k: v.to(self.device) for k, v in batch.items() if k != "labels"}  # PaliGemma's processor adds labels
        if "pixel_values" in out:
            out["pixel_values"] = out["pixel_values"].to(dtype)
        return out

    def _action_ids(self, bins: torch.Tensor) -> torch.Tensor:
        return self.action_end - 1 - bins

    def _bin_logits(self, token_logits: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits [..., V] -> bin logits [..., 256] (bin b is id end-1-b)."""
        return token_logits[..., self.action_end - NUM_BINS : self.action_end].flip(-1).float()

    def _score(self, inputs: dict[str, torch.Tensor], appended: torch.Tensor) -> torch.Tensor:
        """Bin logits [B, n(+1), 256]: parallel decoding reads the n appended placeholders; autoregressive
        decoding reads the last prompt position and each appended token (n + 1 predictions)."""
        out = self.model(**full_sequence(self.model, inputs, appended))
        n = appended.shape[1]
        prompt_len = inputs["input_ids"].shape[1]
        if self.settings.decoding == "parallel":
            return self._bin_logits(out.logits[:, prompt_len : prompt_len + n])
        return self._bin_logits(out.logits[:, prompt_len - 1 : prompt_len + n])

    def forward(self, obs: Observation, actions: torch.Tensor | None = None) -> torch.Tensor:
        def score(index, part):
            return self._forward(part, actions if actions is None or index is None else actions[index])

        return self._per_group(obs, score)

    def _forward(self, obs: Observation, actions: torch.Tensor | None = None) -> torch.Tensor:
        dims = self.chunk_size * self.tokenizer.dim  # the statistics' dimension (7, or 14 bimanual)
        inputs = self._inputs(obs)
        if self.settings.decoding == "parallel":
            placeholder = torch.full((len(obs), dims), self._placeholder_id(), device=self.device)
            return self._score(inputs, placeholder)
        if actions is None:
            raise ValueError("an autoregressive policy needs the action bins to score (teacher forcing)")
        # Teacher forcing: the last action token is never an input, it is only predicted.
        return self._score(inputs, self._action_ids(actions[:, : dims - 1].to(self.device)))

    def _placeholder_id(self) -> int:
        text_tokenizer = getattr(self.processor, "tokenizer", self.processor)
        return int(text_tokenizer.pad_token_id)

    @torch.no_grad()
    def sample(self, obs: Observation, temperature: float, generator: torch.Generator | None = None):
        if self.settings.decoding == "parallel":
            logits = self(obs)
            bins, logp = sample_bins(logits, temperature, generator)
            return bins, logp, logits
        was_training = self.model.training
        self.model.eval()  # rollouts sample without dropout, and gradient checkpointing would drop the cache
        generator = _generator_on(generator, self.device)

        def sample_part(index, part):
            rows = generator  # per-trajectory generators follow their queries into the group
            if isinstance(generator, list) and index is not None:
                rows = [generator[i] for i in index.tolist()]
            return self._sample_autoregressive(part, temperature, rows)

        try:
            return self._per_group(obs, sample_part)
        finally:
            self.model.train(was_training)

    def _uses_cache(self) -> bool:
        if self.settings.kv_cache == "auto":
            return supports_batched_cache(self.model)
        return self.settings.kv_cache == "on"

    def _sample_autoregressive(self, obs: Observation, temperature: float, generator: torch.Generator | None):
        inputs = self._inputs(obs)
        dims = self.chunk_size * self.tokenizer.dim  # the statistics' dimension (7, or 14 bimanual)
        if self._uses_cache():
            cached = sample_with_cache(
                self.model, inputs, dims, self._bin_logits, self._action_ids, temperature, generator
            )
            if cached is not None:
                return cached
        chosen = torch.zeros(len(obs), 0, dtype=torch.long, device=self.device)
        all_logits, all_logp = [], []
        for _ in range(dims):  # uncached: the whole prompt again for every token (remote code without a batched cache)
            logits = self._score(inputs, self._action_ids(chosen))[:, -1:]
            bins, logp = sample_bins(logits, temperature, generator)
            chosen = torch.cat([chosen, bins], dim=1)
            all_logits.append(logits)
            all_logp.append(logp)
        return chosen, torch.cat(all_logp, 1), torch.cat(all_logits, 1)

    # -- persistence ---------------------------------------------------------------------------------
    def save_weights(self, directory: Path) -> None:
        """Save in the transformers format (loads back with the Auto classes) plus our conventions file."""
        target = directory / "hf_model"
        model = self.model
        if self.settings.lora_rank > 0:
            model.save_pretrained(directory / "lora_adapter")
            from peft.tuners.lora import LoraLayer

            bases = [m.get_base_layer().weight for m in model.modules() if isinstance(m, LoraLayer)]
            kept = [weight.detach().clone() for weight in bases]
            model.merge_adapter()
            try:
                model.get_base_model().save_pretrained(target)
            finally:
                model.unmerge_adapter()
                with torch.no_grad():  # unmerging rounds: the frozen base is restored to the bit, so that saving
                    for weight, original in zip(bases, kept, strict=True):  # never changes the training
                        weight.copy_(original)
        else:
            model.save_pretrained(target)
        self.processor.save_pretrained(target)
        self._copy_remote_code(target)
        conventions = {k: v for k, v in asdict(self.settings).items() if k not in ("model_dir", "base_model_dir")}
        (target / SETTINGS_FILE).write_text(json.dumps(conventions, indent=1))
        stats = {self.settings.unnorm_key or "opd": {"action": self.tokenizer.to_dict()}}
        (target / "dataset_statistics.json").write_text(json.dumps(stats, indent=1))

    def load_weights(self, directory: Path) -> None:
        """In place, from an OPD checkpoint folder (resume): the checkpoint as `from_checkpoint` restores it (a LoRA
        run: its frozen base and trained adapters), its weights copied into this policy."""
        fresh = type(self).from_checkpoint(directory, self.arch_config(), self.tokenizer, str(self.device))
        self.load_state_dict(fresh.state_dict())

    def _copy_remote_code(self, target: Path) -> None:
        """A checkpoint with its own modeling code (config auto_map) keeps working only with that code beside it."""
        source = Path(self.settings.base_model_dir or self.settings.model_dir)
        if not getattr(self.model.config, "auto_map", None) or not source.is_dir():
            return
        for module in source.glob("*.py"):
            if not (target / module.name).exists():
                shutil.copy(module, target / module.name)

    @classmethod
    def from_checkpoint(
        cls, directory: Path, arch: dict[str, Any], tokenizer: ActionTokenizer, device: str
    ) -> TransformersVLA:
        settings = HFVLASettings.from_dict(arch)
        adapter = directory / "lora_adapter"
        if settings.lora_rank > 0 and adapter.is_dir() and Path(settings.base_model_dir).is_dir():
            # Exact resume: the frozen base plus the trained adapters (not the merged export).
            base = replace_settings(settings, model_dir=settings.base_model_dir, lora_rank=0)
            policy = cls.from_pretrained(settings.base_model_dir, base, device)
            from peft import PeftModel

            policy.model = PeftModel.from_pretrained(policy.model, adapter, is_trainable=True).to(device)
            policy.settings = settings
            return policy
        settings = replace_settings(settings, model_dir=str(directory / "hf_model"))
        return cls.from_pretrained(directory / "hf_model", settings, device)


def _generator_on(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    # torch.multinomial needs a generator on the tensor's device; off-device ones fall back to the global RNG.
    if isinstance(generator, list):
        return generator  # per-row generators: sample_bins draws each row on its generator's device
    return generator if generator is not None and generator.device.type == device.type else None


def replace_settings(settings: HFVLASettings, **changes: Any) -> HFVLASettings:
    return HFVLASettings.from_dict({**asdict(settings), **changes})


def _merge_settings(model_dir: Path, settings: HFVLASettings) -> HFVLASettings:
    """Conventions stored with the model fill in whatever the caller left at its default."""
    stored_file = model_dir / SETTINGS_FILE
    merged = asdict(settings)
    merged["model_dir"] = str(model_dir)
    if stored_file.is_file():
        defaults = asdict(HFVLASettings())
        for key, value in json.loads(stored_file.read_text()).items():
            if key in merged and merged[key] == defaults.get(key):
                merged[key] = value
    return HFVLASettings.from_dict(merged)


class ModelDirLoader:
    """Checkpoint loader `transformers` (listed in `opd_core.registry.CHECKPOINT_LOADERS`): a raw model directory."""

    accepts = staticmethod(is_transformers_dir)

    @staticmethod
    def load(directory: Path, device: str, hf_settings: dict[str, Any] | None) -> TransformersVLA:
        return TransformersVLA.from_pretrained(directory, HFVLASettings.from_dict(hf_settings or {}), device)
