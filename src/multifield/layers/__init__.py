"""Keras layers that stand alone in any Keras model: mask-exact attention pooling, a recurrent attention encoder,
masked global pooling, IDF-weighted bag-of-tokens pooling, label-wise attention, whole-field dropout and a blend of two models' logits."""

from multifield.layers.attention_pooling import AttentionPooling
from multifield.layers.field_dropout import FieldDropout
from multifield.layers.idf_pooling import IdfPooling
from multifield.layers.label_attention import LabelAttention
from multifield.layers.logit_blend import LogitBlend
from multifield.layers.masked_global_pooling import MaskedGlobalPooling
from multifield.layers.recurrent_encoder import RecurrentAttentionEncoder

__all__ = ["AttentionPooling", "FieldDropout", "IdfPooling", "LabelAttention", "LogitBlend", "MaskedGlobalPooling", "RecurrentAttentionEncoder"]
