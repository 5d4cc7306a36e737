"""One MAE pre-training step of ViT-Lite-7/4 on 64x64 images in PyTorch, timed.

The reference point for `deno task gpu-check`: the same model and step as
bench/train_step.ts (patch 4, width 256, depth 7, 4 heads, MLP 512, dropout
0.1; decoder width 128, depth 2, 4 heads, MLP 256; 75% random masking; MSE
on the masked patches; AdamW), on CUDA when available, else on the CPU with
the given number of threads. Prints one JSON object:
{"device", "threads", "batch", "steps", "ms_per_step", "images_per_s", "torch"}.
"""

import argparse
import json
import time

import torch
from torch import nn


class Block(nn.Module):
    """A pre-norm transformer block."""

    def __init__(self, width, heads, mlp, dropout):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp, width)
        )

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
        return x + self.drop(self.mlp(self.norm2(x)))


class Mae(nn.Module):
    """ViT-Lite-7/4 encoder on the kept patches, a small decoder on all of them."""

    def __init__(self, size=64, patch=4, channels=3, width=256, depth=7, heads=4, mlp=512,
                 dec_width=128, dec_depth=2, dec_heads=4, dec_mlp=256, dropout=0.1):
        super().__init__()
        self.patch = patch
        self.tokens = (size // patch) ** 2
        dim = patch * patch * channels
        self.embed = nn.Linear(dim, width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, self.tokens + 1, width) * 0.02)
        self.blocks = nn.Sequential(*[Block(width, heads, mlp, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.dec_embed = nn.Linear(width, dec_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_width))
        self.dec_pos = nn.Parameter(torch.randn(1, self.tokens + 1, dec_width) * 0.02)
        self.dec_blocks = nn.Sequential(
            *[Block(dec_width, dec_heads, dec_mlp, dropout) for _ in range(dec_depth)]
        )
        self.dec_norm = nn.LayerNorm(dec_width)
        self.head = nn.Linear(dec_width, dim)

    def patches(self, images):
        n, c, h, w = images.shape
        p = self.patch
        x = images.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(n, self.tokens, p * p * c)

    def forward(self, images, ratio=0.75):
        target = self.patches(images)
        n = images.shape[0]
        keep = self.tokens - round(ratio * self.tokens)
        order = torch.rand(n, self.tokens, device=images.device).argsort(dim=1)
        kept, masked = order[:, :keep], order[:, keep:]
        x = self.embed(target) + self.pos[:, 1:]
        x = torch.gather(x, 1, kept[..., None].expand(-1, -1, x.shape[-1]))
        x = torch.cat([(self.cls + self.pos[:, :1]).expand(n, -1, -1), x], dim=1)
        x = self.dec_embed(self.norm(self.blocks(x)))
        full = self.mask_token.expand(n, self.tokens, -1).clone()
        full.scatter_(1, kept[..., None].expand(-1, -1, full.shape[-1]), x[:, 1:])
        y = torch.cat([x[:, :1], full], dim=1) + self.dec_pos
        pred = self.head(self.dec_norm(self.dec_blocks(y)))[:, 1:]
        idx = masked[..., None].expand(-1, -1, target.shape[-1])
        return ((torch.gather(pred, 1, idx) - torch.gather(target, 1, idx)) ** 2).mean()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="timed steps after two untimed")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads when there is no CUDA")
    ap.add_argument("--device", default="auto", help="auto, cuda or cpu")
    a = ap.parse_args()
    device = "cuda" if a.device == "auto" and torch.cuda.is_available() else a.device
    device = "cpu" if device == "auto" else device
    if device == "cpu":
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = Mae().to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.15, betas=(0.9, 0.95))
    images = torch.randn(a.batch, 3, 64, 64, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        model(images).backward()
        opt.step()

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    ms = (time.perf_counter() - t0) * 1000 / a.steps
    print(json.dumps({
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "threads": torch.get_num_threads() if device == "cpu" else None,
        "batch": a.batch,
        "steps": a.steps,
        "ms_per_step": ms,
        "images_per_s": a.batch / (ms / 1000),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
