"""OpenVLA-interface configuration for the test checkpoint folder (written by OPD Lab, not OpenVLA's code).

It follows the public interface of OpenVLA's `configuration_prismatic.py`: `PrismaticConfig` (model_type
"prismatic") with the backbone ids, the fused-backbone flag, `image_sizes`, a Llama `text_config`, `pad_token_id`
and `pad_to_multiple_of`; `OpenVLAConfig` (model_type "openvla") adds `norm_stats` and `n_action_bins`.
OpenVLA builds its vision backbones with timm from `timm_model_ids`; this stand-in builds a small plain-torch ViT
per backbone from `vision_width`, `vision_depth` and `patch_size`, so the folder loads with no timm and no download.
"""

from transformers import PretrainedConfig
from transformers.models.auto import CONFIG_MAPPING


class PrismaticConfig(PretrainedConfig):
    model_type = "prismatic"

    def __init__(
        self,
        vision_backbone_id="dinosiglip-vit-so-224px",
        llm_backbone_id="llama2-7b-pure",
        arch_specifier="no-align+fused-gelu-mlp",
        use_fused_vision_backbone=None,
        image_sizes=None,
        image_resize_strategy="resize-naive",
        text_config=None,
        llm_max_length=2048,
        pad_token_id=32000,
        pad_to_multiple_of=64,
        output_projector_states=False,
        vision_width=32,
        vision_depth=3,
        patch_size=14,
        **kwargs,
    ):
        self.vision_backbone_id = vision_backbone_id
        self.llm_backbone_id = llm_backbone_id
        self.arch_specifier = arch_specifier
        self.output_projector_states = output_projector_states
        if use_fused_vision_backbone is None:
            use_fused_vision_backbone = vision_backbone_id.startswith(("dinoclip", "dinosiglip"))
        self.use_fused_vision_backbone = use_fused_vision_backbone
        self.image_sizes = list(image_sizes or ([224, 224] if use_fused_vision_backbone else [224]))
        self.image_resize_strategy = image_resize_strategy
        self.llm_max_length = llm_max_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.vision_width, self.vision_depth, self.patch_size = vision_width, vision_depth, patch_size
        text_config = text_config.to_dict() if isinstance(text_config, PretrainedConfig) else (text_config or {})
        self.text_config = CONFIG_MAPPING["llama"](**text_config)
        super().__init__(pad_token_id=pad_token_id, **kwargs)


class OpenVLAConfig(PrismaticConfig):
    model_type = "openvla"

    def __init__(self, norm_stats=None, n_action_bins=256, **kwargs):
        self.norm_stats, self.n_action_bins = norm_stats, n_action_bins
        super().__init__(**kwargs)
