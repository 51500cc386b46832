"""`example-prototypes`: a training-free method from outside the package (a plugin file).

python -m bench run --plugin examples/plugin_method.py --methods example-prototypes support-copy
"""
import torch
import torch.nn.functional as F

from methods import register_method
from methods.base import foreground
from methods.common import BackboneMethod, masked_average_pool

# per training profile: "options" are passed to the builder ("recipe" would override the profile's
# optimiser, lr, epochs... for a trainable method)
PROFILES = {"synthetic": {"options": {"scale": 20.0}}, "tiny": {"options": {"scale": 10.0}}}


@register_method("example-prototypes", trainable=False, profiles=PROFILES, citation="PANet without training")
class ExamplePrototypes(BackboneMethod):
    """Example plugin: cosine similarity of the query to the supports' mean FG/BG prototypes, no training."""

    def __init__(self, scale: float = 20.0, **backbone):  # backbone, backbone_weights: the profile's
        super().__init__(**backbone)
        self.scale = scale
        self._options.update(scale=scale)  # options() is recorded with every result cell

    def query_code(self, query_feats):  # [B, C, h, w] -> a tuple, cached per query image
        return (F.normalize(query_feats, dim=1),)

    def support_code(self, support_feats, support_masks):  # [N, C, h, w], [N, H, W]: cached per (image, class)
        return (masked_average_pool(support_feats, foreground(support_masks)),
                masked_average_pool(support_feats, (support_masks == 0).float()))

    def decode(self, query_code, support_code):  # support codes arrive as [B, K, ...]: combine the K shots
        (query,), (fg, bg) = query_code, support_code
        prototypes = F.normalize(torch.stack([bg.mean(1), fg.mean(1)], dim=1), dim=2)  # [B, 2, C]
        return self.scale * torch.einsum("bnc,bchw->bnhw", prototypes, query)  # logits [B, 2, h, w]
