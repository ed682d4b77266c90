"""Named rows of Tables 3-8 that are config overrides of `sse_cross`.

Section 4.3: "the first variant is to remove SSE; the second variant is to
remove bottom SSE and atop self-attention in Figure 3; the third variant is
to change our novel cross-attention to self-attention". We read the three
attention variants as variants of the attention module without SSE (1 and 2
drop it explicitly; 3 is listed with them), and "cross-attention ->
self-attention" as each modality gating itself (eq. 5-6 as printed,
`gating="self"`). Table 8's ablations each change one thing of the full model.

Not config overrides (own builders): score fusion (`score_fusion.py`),
compact bilinear pooling and its gated form (`compact_bilinear.py`), SSE ->
mix-up / within-class shuffling (`feature_augmentation.py`), MMBT
(`mmbt.py`).
"""

from crisis_keras.models.registry import register_variant

# Tables 3-7: attention variants and feature fusion.
register_variant("attention_variant_1", "sse_cross", "Cross-attention + self-attention, no SSE", sse=False)
register_variant(
    "attention_variant_2", "sse_cross", "Cross-attention only (no SSE, no self-attention)",
    sse=False, self_attention=False,
)
register_variant(
    "attention_variant_3", "sse_cross", "Self gating (eq. 5-6 as printed) + self-attention, no SSE",
    sse=False, gating="self",
)
register_variant(
    "feature_fusion", "sse_cross", "Concatenated projections -> head (no attention, no SSE)",
    sse=False, attention="none", self_attention=False,
)

# Table 8: ablations of SSE-Cross-BERT-DenseNet.
register_variant("ablation_no_self_attention", "sse_cross", "- Self-Attention", self_attention=False)
register_variant("ablation_no_cross_attention", "sse_cross", "- Cross-Attention", attention="none")
register_variant("co_attention", "sse_cross", "- Cross-Attention + Co-Attention", attention="co")
register_variant("ablation_self_gating", "sse_cross", "- Cross-Attention + Self-Attention", gating="self")
# "If we remove dropout completely" (section 5.4): the head's and BERT's own.
register_variant("ablation_no_dropout", "sse_cross", "- Dropout", dropout=0.0, backbone_dropout=0.0)
register_variant("ablation_no_sse", "sse_cross", "- SSE", sse=False)
