"""OpenVLA-interface model for the test checkpoint folder (written by OPD Lab, not OpenVLA's code).

Public interface kept from OpenVLA's `modeling_prismatic.py`: `PrismaticForConditionalGeneration` (vision
backbone(s) -> `projector` -> a causal LM `language_model`, the projected patches inserted after the first token,
i.e. after <BOS>) and `OpenVLAForActionPrediction` with `norm_stats`, `bins` / `bin_centers`, `vocab_size` (the
text vocabulary less `pad_to_multiple_of`), `predict_action`, `get_action_dim` and `get_action_stats`. Its
`forward` takes what OpenVLA's takes (no `position_ids`), and, as OpenVLA's, a cached step takes one query at a time.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import ModelOutput

from .configuration_prismatic import OpenVLAConfig, PrismaticConfig


class PatchViT(nn.Module):
    """A small ViT standing in for a timm backbone; returns the patch features of its second-to-last block,
    as OpenVLA reads its backbones."""

    def __init__(self, width, depth, patch_size, image_size):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, width, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, (image_size // patch_size) ** 2, width))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width, max(1, width // 16), 4 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(depth)
        )
        self.embed_dim = width

    def forward(self, pixel_values):
        x = self.patch_embed(pixel_values).flatten(2).transpose(1, 2) + self.pos_embed
        for block in self.blocks[:-1]:
            x = block(x)
        return x


class PrismaticVisionBackbone(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.use_fused_vision_backbone = config.use_fused_vision_backbone
        args = (config.vision_width, config.vision_depth, config.patch_size)
        self.featurizer = PatchViT(*args, config.image_sizes[0])
        self.embed_dim = self.featurizer.embed_dim
        if self.use_fused_vision_backbone:
            self.fused_featurizer = PatchViT(*args, config.image_sizes[1])
            self.embed_dim += self.fused_featurizer.embed_dim

    def forward(self, pixel_values):
        if not self.use_fused_vision_backbone:
            return self.featurizer(pixel_values)
        first, second = torch.split(pixel_values, [3, 3], dim=1)  # channel-stacked, one view per backbone
        return torch.cat([self.featurizer(first), self.fused_featurizer(second)], dim=2)


class PrismaticProjector(nn.Module):
    def __init__(self, use_fused_vision_backbone, vision_dim, llm_dim):
        super().__init__()
        hidden = 4 * vision_dim if use_fused_vision_backbone else llm_dim
        layers = [nn.Linear(vision_dim, hidden), nn.GELU(), nn.Linear(hidden, llm_dim)]
        if use_fused_vision_backbone:
            layers += [nn.GELU(), nn.Linear(llm_dim, llm_dim)]
        self.mlp = nn.Sequential(*layers)

    def forward(self, patches):
        return self.mlp(patches)


@dataclass
class PrismaticCausalLMOutputWithPast(ModelOutput):
    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    past_key_values: object = None
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    projector_features: torch.FloatTensor | None = None


class PrismaticPreTrainedModel(PreTrainedModel):
    config_class = PrismaticConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["PrismaticProjector"]
    _supports_sdpa = True

    def _init_weights(self, module):
        std = self.config.text_config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.weight.data.normal_(0.0, std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(0.0, std)


class PrismaticForConditionalGeneration(PrismaticPreTrainedModel, GenerationMixin):
    def __init__(self, config):
        super().__init__(config)
        self.vision_backbone = PrismaticVisionBackbone(config)
        self.projector = PrismaticProjector(
            config.use_fused_vision_backbone, self.vision_backbone.embed_dim, config.text_config.hidden_size
        )
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.vocab_size = config.text_config.vocab_size
        self.pad_token_id = config.pad_token_id
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value):
        self.language_model.set_output_embeddings(value)

    def get_decoder(self):
        return self.language_model.get_decoder()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        pixel_values=None,
        labels=None,
        inputs_embeds=None,
        past_key_values=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        output_projector_features=None,
        return_dict=None,
    ):
        use_cache = bool(use_cache) and not self.training
        common = dict(
            use_cache=use_cache, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )
        projected = None
        if input_ids is not None and input_ids.shape[1] == 1 and past_key_values is not None:
            if input_ids.shape[0] != 1:
                raise ValueError("cached generation takes one query at a time (as OpenVLA's does)")
            out = self.language_model(input_ids=input_ids, past_key_values=past_key_values, **common)
        elif pixel_values is None:
            out = self.language_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **common)
        else:
            if input_ids.shape[0] != pixel_values.shape[0]:
                raise ValueError("every query needs its image (mixed text/image batches are not supported)")
            projected = self.projector(self.vision_backbone(pixel_values))
            embeddings = self.get_input_embeddings()(input_ids)
            embeddings = torch.cat([embeddings[:, :1], projected.to(embeddings.dtype), embeddings[:, 1:]], dim=1)
            mask = None
            if attention_mask is not None:
                patch_mask = attention_mask.new_ones(projected.shape[:2])
                mask = torch.cat([attention_mask[:, :1], patch_mask, attention_mask[:, 1:]], dim=1)
            if labels is not None:
                ignore = labels.new_full(projected.shape[:2], -100)
                labels = torch.cat([labels[:, :1], ignore, labels[:, 1:]], dim=1)
            out = self.language_model(inputs_embeds=embeddings, attention_mask=mask, labels=labels, **common)
        return PrismaticCausalLMOutputWithPast(
            loss=out.loss,
            logits=out.logits,
            past_key_values=out.past_key_values,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            projector_features=projected if output_projector_features else None,
        )

    def prepare_inputs_for_generation(
        self, input_ids, past_key_values=None, pixel_values=None, attention_mask=None, **kwargs
    ):
        if input_ids.shape[0] > 1:
            raise ValueError("generation takes one query at a time (as OpenVLA's does)")
        if past_key_values is not None and past_key_values.get_seq_length() > 0:
            input_ids, pixel_values = input_ids[:, -1:], None
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pixel_values": pixel_values,
            "past_key_values": past_key_values,
            "use_cache": kwargs.get("use_cache"),
        }


class OpenVLAForActionPrediction(PrismaticForConditionalGeneration):
    config_class = OpenVLAConfig

    def __init__(self, config):
        super().__init__(config)
        self.norm_stats = config.norm_stats
        self.bins = np.linspace(-1, 1, config.n_action_bins)
        self.bin_centers = (self.bins[:-1] + self.bins[1:]) / 2.0
        self.vocab_size = config.text_config.vocab_size - config.pad_to_multiple_of

    @staticmethod
    def _check_unnorm_key(norm_stats, unnorm_key):
        if unnorm_key is None:
            if len(norm_stats) != 1:
                raise ValueError(f"the model holds statistics for {sorted(norm_stats)}: pass an unnorm_key")
            unnorm_key = next(iter(norm_stats))
        if unnorm_key not in norm_stats:
            raise ValueError(f"unnorm_key {unnorm_key!r} is not one of {sorted(norm_stats)}")
        return unnorm_key

    def get_action_dim(self, unnorm_key=None):
        return len(self.get_action_stats(unnorm_key)["q01"])

    def get_action_stats(self, unnorm_key=None):
        return self.norm_stats[self._check_unnorm_key(self.norm_stats, unnorm_key)]["action"]

    def predict_action(self, input_ids=None, unnorm_key=None, **kwargs):
        """Greedy action tokens -> bins -> normalised actions in [-1, 1] -> un-normalised with q01/q99 (the
        dimensions the mask excludes stay normalised)."""
        dims = self.get_action_dim(unnorm_key)
        generated = self.generate(input_ids, max_new_tokens=dims, min_new_tokens=dims, do_sample=False, **kwargs)
        tokens = generated[0, -dims:].cpu().numpy()
        bins = np.clip(self.vocab_size - tokens - 1, 0, self.bin_centers.shape[0] - 1)
        normalised = self.bin_centers[bins]
        stats = self.get_action_stats(unnorm_key)
        mask = np.asarray(stats.get("mask", np.ones(dims, dtype=bool)), dtype=bool)
        high, low = np.asarray(stats["q99"]), np.asarray(stats["q01"])
        return np.where(mask, 0.5 * (normalised + 1) * (high - low) + low, normalised)
