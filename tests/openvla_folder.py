"""Write an OpenVLA-style checkpoint folder (remote code + weights + processor + statistics) for the tests.

The folder is laid out as a user's OpenVLA download is: `config.json` with an `auto_map` to
`configuration_prismatic.OpenVLAConfig` / `modeling_prismatic.OpenVLAForActionPrediction` (the removed
`AutoModelForVision2Seq` entry OpenVLA registers), the modeling code beside it, `preprocessor_config.json` and
`tokenizer_config.json` mapping `AutoProcessor` to `processing_prismatic.PrismaticProcessor`, `norm_stats` in
the config and `dataset_statistics.json` keyed by unnorm_key, and no `opd_vla.json`. The modeling code in
tests/openvla_remote/ is this project's, written to OpenVLA's public class interface; weights are random.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from hf_models import _text_tokenizer
from opd_core.tokenizer import ActionTokenizer

REMOTE_CODE = Path(__file__).resolve().parent / "openvla_remote"
MODULES = ("configuration_prismatic.py", "modeling_prismatic.py", "processing_prismatic.py")
AUTO_MAP = {
    "AutoConfig": "configuration_prismatic.OpenVLAConfig",
    "AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction",
}
PROCESSOR_MAP = {
    "AutoImageProcessor": "processing_prismatic.PrismaticImageProcessor",
    "AutoProcessor": "processing_prismatic.PrismaticProcessor",
}
UNNORM_KEY = "libero_object_no_noops"


def _statistics(tokenizer: ActionTokenizer) -> dict:
    """OpenVLA's dataset_statistics.json layout: several datasets, each with action and proprio statistics."""
    action = tokenizer.to_dict()
    q01, q99 = action["q01"], action["q99"]
    entry = {
        "action": {
            "mean": [0.0] * 7,
            "std": [1.0] * 7,
            "min": q01,
            "max": q99,
            "q01": q01,
            "q99": q99,
            "mask": [True] * 6 + [False],
        },
        "proprio": {"mean": [0.0] * 8, "std": [1.0] * 8, "q01": [-1.0] * 8, "q99": [1.0] * 8},
        "num_transitions": 1000,
        "num_trajectories": 10,
    }
    other = json.loads(json.dumps(entry))
    other["action"]["q01"], other["action"]["q99"] = [-2.0] * 7, [2.0] * 7
    return {UNNORM_KEY: entry, "bridge_orig": other}


def build_openvla_folder(
    directory: str | Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    vision_width: int = 32,
    vision_depth: int = 2,
    image_size: int = 28,
    patch_size: int = 14,
    seed: int = 0,
    tokenizer: ActionTokenizer | None = None,
) -> Path:
    """A fused two-backbone (DINO + SigLIP style) OpenVLA with a Llama decoder of OpenVLA's vocabulary
    (32,000 + 64 padding ids); returns the folder."""
    from tokenizers.processors import TemplateProcessing
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in MODULES:
        shutil.copy(REMOTE_CODE / name, directory / name)
    stats = _statistics(tokenizer or ActionTokenizer.identity())
    text_tokenizer = _text_tokenizer()
    bos = text_tokenizer.convert_tokens_to_ids("<s>")
    text_tokenizer._tokenizer.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    text = {
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, hidden // 32),
        "num_key_value_heads": max(1, hidden // 32),
        "vocab_size": 32064,
        "max_position_embeddings": 2048,
        "pad_token_id": 32000,
        "bos_token_id": bos,
        "eos_token_id": text_tokenizer.convert_tokens_to_ids("</s>"),
    }

    config_class = get_class_from_dynamic_module(AUTO_MAP["AutoConfig"], str(directory), local_files_only=True)
    model_class = get_class_from_dynamic_module(
        AUTO_MAP["AutoModelForVision2Seq"], str(directory), local_files_only=True
    )
    config = config_class(
        vision_backbone_id="dinosiglip-vit-so-224px",
        image_sizes=[image_size, image_size],
        text_config=text,
        norm_stats=stats,
        n_action_bins=256,
        vision_width=vision_width,
        vision_depth=vision_depth,
        patch_size=patch_size,
        architectures=["OpenVLAForActionPrediction"],
    )
    torch.manual_seed(seed)
    model_class(config).save_pretrained(directory)
    config_file = directory / "config.json"
    config_json = json.loads(config_file.read_text())
    config_json["auto_map"] = AUTO_MAP
    config_file.write_text(json.dumps(config_json, indent=1))

    text_tokenizer.save_pretrained(directory)
    tokenizer_file = directory / "tokenizer_config.json"
    tokenizer_json = json.loads(tokenizer_file.read_text())
    tokenizer_json.update(
        {"auto_map": {"AutoProcessor": PROCESSOR_MAP["AutoProcessor"]}, "processor_class": "PrismaticProcessor"}
    )
    tokenizer_file.write_text(json.dumps(tokenizer_json, indent=1))
    preprocessor = {
        "auto_map": PROCESSOR_MAP,
        "image_processor_type": "PrismaticImageProcessor",
        "processor_class": "PrismaticProcessor",
        "use_fused_vision_backbone": True,
        "image_resize_strategy": "resize-naive",
        "input_sizes": [[3, image_size, image_size]] * 2,
        "means": [[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]],
        "stds": [[0.229, 0.224, 0.225], [0.5, 0.5, 0.5]],
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=1))
    (directory / "dataset_statistics.json").write_text(json.dumps(stats, indent=1))
    return directory
