"""Build a tiny LLaVA-architecture VLA with OpenVLA-style action tokens, offline, into a local directory.

Used by the tests and benchmarks to exercise exactly the loading path a real checkpoint takes (config,
safetensors weights, tokenizer and processor files, action statistics), with no download. The vocabulary is
a word-level tokenizer over the tabletop instructions plus 256 action tokens at its end.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from opd_core.envs.tabletop.tasks import CATALOG
from opd_core.tokenizer import ActionTokenizer

PROMPT = "<image> In: What action should the robot take to {instruction}? Out:"
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]


def _words() -> list[str]:
    texts = [task.instruction for suite in CATALOG.suites.values() for task in suite] + [PROMPT]
    return sorted({w for text in texts for w in re.findall(r"[a-z0-9]+|[^\sa-z0-9<>]", text.lower())})


def _text_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + _words() + [f"<act_{i}>" for i in range(256)])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )


def build_tiny_llava(
    directory: str | Path,
    *,
    image_size: int = 64,
    patch_size: int = 16,
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
    tokenizer: ActionTokenizer | None = None,
) -> Path:
    """Write a randomly initialised tiny VLA to `directory` and return the path."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    directory = Path(directory)
    text_tokenizer = _text_tokenizer()
    vocab_size = len(text_tokenizer)
    vision = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
    )
    text = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=vocab_size,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=SPECIALS.index("<image>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.save_pretrained(directory)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=text_tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,
    )
    processor.save_pretrained(directory)
    stats = (tokenizer or ActionTokenizer.identity()).to_dict()
    (directory / "dataset_statistics.json").write_text(json.dumps({"tabletop": {"action": stats}}))
    (directory / "opd_vla.json").write_text(json.dumps({"prompt_template": PROMPT}))
    return directory


# -- realistic layouts (random weights from their configs; sizes of a few hundred million parameters) ----------------
OPENVLA_PROMPT_IMAGE = "<image> In: What action should the robot take to {instruction}?\nOut:"
PALIGEMMA_PROMPT = "<image>In: What action should the robot take to {instruction}?\nOut:"
"""PaliGemma's processor expands the one <image> into its image tokens and adds <bos> after them."""


def _siglip(hidden: int, layers: int, image_size: int, patch_size: int):
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        image_size=image_size,
        patch_size=patch_size,
    )


def _siglip_processor(image_size: int):
    from transformers import SiglipImageProcessor

    return SiglipImageProcessor(size={"height": image_size, "width": image_size})


def _write_conventions(directory: Path, tokenizer: ActionTokenizer | None, **conventions) -> None:
    stats = (tokenizer or ActionTokenizer.identity()).to_dict()
    (directory / "dataset_statistics.json").write_text(json.dumps({"tabletop": {"action": stats}}))
    (directory / "opd_vla.json").write_text(json.dumps(conventions))


def build_openvla_like(
    directory: str | Path,
    *,
    vision_hidden: int = 768,
    vision_layers: int = 12,
    hidden: int = 1024,
    layers: int = 12,
    image_size: int = 112,
    patch_size: int = 14,
    seed: int = 0,
    tokenizer: ActionTokenizer | None = None,
) -> Path:
    """OpenVLA's layout in transformers' own classes: a SigLIP ViT read at its second-to-last layer, a two-layer
    GELU MLP projector and a Llama decoder with OpenVLA's padded vocabulary (32,000 + 64 padding ids, the 256
    action tokens ending 64 ids before the end). Defaults: ~310M parameters (OpenVLA-7B: 0.4B + 0.3B + 6.7B)."""
    from transformers import LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    directory = Path(directory)
    text_tokenizer = _text_tokenizer()
    text = LlamaConfig(
        hidden_size=hidden,
        intermediate_size=int(2.75 * hidden),
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 64),
        vocab_size=32064,
        max_position_embeddings=2048,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    config = LlavaConfig(
        vision_config=_siglip(vision_hidden, vision_layers, image_size, patch_size),
        text_config=text,
        image_token_id=SPECIALS.index("<image>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).save_pretrained(directory)
    LlavaProcessor(
        image_processor=_siglip_processor(image_size),
        tokenizer=text_tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
    ).save_pretrained(directory)
    _write_conventions(directory, tokenizer, prompt_template=OPENVLA_PROMPT_IMAGE, action_vocab_offset=64)
    return directory


def build_paligemma(
    directory: str | Path,
    *,
    vision_hidden: int = 768,
    vision_layers: int = 12,
    hidden: int = 1024,
    layers: int = 12,
    image_size: int = 112,
    patch_size: int = 14,
    seed: int = 0,
    tokenizer: ActionTokenizer | None = None,
) -> Path:
    """PaliGemma's layout: a SigLIP ViT, a linear projector and a Gemma decoder (multi-query attention, GeGLU,
    tied embeddings) that reads the image and prompt as a bidirectional prefix. The vocabulary is the word-level
    one plus PaliGemma's 1,152 location/segmentation tokens, then 256 action ids. Defaults: ~270M parameters."""
    from transformers import GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor

    directory = Path(directory)
    image_processor = _siglip_processor(image_size)
    image_processor.image_seq_length = (image_size // patch_size) ** 2
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=_text_tokenizer())
    image_token_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    text = GemmaConfig(
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 128),
        num_key_value_heads=1,
        head_dim=128,
        vocab_size=len(processor.tokenizer) + 256,
        max_position_embeddings=2048,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    config = PaliGemmaConfig(
        vision_config=_siglip(vision_hidden, vision_layers, image_size, patch_size),
        text_config=text,
        image_token_id=image_token_id,
        projection_dim=hidden,
    )
    config.vision_config.projection_dim = hidden
    torch.manual_seed(seed)
    PaliGemmaForConditionalGeneration(config).save_pretrained(directory)
    processor.save_pretrained(directory)
    _write_conventions(directory, tokenizer, prompt_template=PALIGEMMA_PROMPT)
    return directory
