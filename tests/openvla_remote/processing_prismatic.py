"""OpenVLA-interface processor for the test checkpoint folder (written by OPD Lab, not OpenVLA's code).

`PrismaticImageProcessor` resizes the image once per vision backbone (`image_sizes`), scales and normalises it
with that backbone's mean/std and stacks the views on the channel axis; `PrismaticProcessor` pairs it with the
folder's tokenizer and returns `input_ids`, `attention_mask` and `pixel_values`, as OpenVLA's processor does.
"""

import numpy as np
from PIL import Image
from transformers import BatchFeature, ProcessorMixin
from transformers.image_processing_utils import ImageProcessingMixin


class PrismaticImageProcessor(ImageProcessingMixin):
    model_input_names = ["pixel_values"]

    def __init__(
        self,
        use_fused_vision_backbone=False,
        image_resize_strategy="resize-naive",
        input_sizes=None,
        means=None,
        stds=None,
        **kwargs,
    ):
        self.use_fused_vision_backbone = use_fused_vision_backbone
        self.image_resize_strategy = image_resize_strategy
        self.input_sizes = input_sizes or [[3, 224, 224]]
        self.means = means or [[0.5, 0.5, 0.5]] * len(self.input_sizes)
        self.stds = stds or [[0.5, 0.5, 0.5]] * len(self.input_sizes)
        super().__init__(**kwargs)

    def apply_transform(self, image):
        views = []
        for (_, height, width), mean, std in zip(self.input_sizes, self.means, self.stds):
            resized = np.asarray(image.resize((width, height), Image.BICUBIC), dtype=np.float32) / 255.0
            views.append(((resized - np.asarray(mean)) / np.asarray(std)).transpose(2, 0, 1))
        return np.concatenate(views, axis=0)

    def preprocess(self, images, return_tensors=None, **_):
        images = images if isinstance(images, list) else [images]
        pil = [
            image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
            for image in images
        ]
        pixels = np.stack([self.apply_transform(image.convert("RGB")) for image in pil]).astype(np.float32)
        return BatchFeature({"pixel_values": pixels}, tensor_type=return_tensors)

    def __call__(self, images, **kwargs):
        return self.preprocess(images, **kwargs)


class PrismaticProcessor(ProcessorMixin):
    image_processor_class = "AutoImageProcessor"
    tokenizer_class = "AutoTokenizer"

    def __init__(self, image_processor=None, tokenizer=None):
        super().__init__(image_processor, tokenizer)

    def __call__(self, text=None, images=None, padding=False, truncation=None, max_length=None, return_tensors=None):
        pixel_values = self.image_processor(images, return_tensors=return_tensors)["pixel_values"]
        text_inputs = self.tokenizer(
            text, return_tensors=return_tensors, padding=padding, truncation=truncation, max_length=max_length
        )
        if pixel_values.shape[0] != text_inputs["input_ids"].shape[0]:
            raise ValueError("batch of prompts and batch of images differ in size")
        return BatchFeature({**text_inputs, "pixel_values": pixel_values})

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)
