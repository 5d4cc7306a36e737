"""The training-step rows of bench/train_step.ts in PyTorch on the CPU.

One MAE pre-training step and one fine-tuning step of ViT-Lite-7/4 on 64x64
inputs, the same architecture as src/models/vit.ts and src/models/mae.ts
(pre-norm blocks with ReLU MLPs and dropout 0.1, fixed sinusoidal positions,
class token appended last, MAE decoder of width 128, depth 2, 75% random
masking, masked-patch MSE; the classifier's BatchNorm1d + linear head on the
class token, cross-entropy) and AdamW, timed with torch.set_num_threads(2).
Prints one JSON object per step: {"name", "batch", "ms", "images_per_second"}.

    python3 bench/torch_train_step.py --batch 32 [--steps 3]
"""

import argparse
import json
import math
import time

import torch
from torch import nn
import torch.nn.functional as F

WIDTH, DEPTH, HEADS, MLP, PATCH, IMAGE = 256, 7, 4, 512, 4, 64
DEC_WIDTH, DEC_DEPTH, DEC_HEADS, DEC_MLP = 128, 2, 4, 256
TOKENS, PATCH_DIM = (IMAGE // PATCH) ** 2, PATCH * PATCH * 3


def positions(tokens, width):
    pos = torch.arange(tokens, dtype=torch.float64)[:, None]
    i = torch.arange(width // 2, dtype=torch.float64)[None, :]
    angle = pos / (10000 ** (2 * i / width))
    out = torch.zeros(tokens, width, dtype=torch.float64)
    out[:, 0::2], out[:, 1::2] = torch.sin(angle), torch.cos(angle)
    return out.float()


class Block(nn.Module):
    def __init__(self, width, heads, mlp, p=0.1):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)
        self.fc1, self.fc2 = nn.Linear(width, mlp), nn.Linear(mlp, width)
        self.drop = nn.Dropout(p)

    def forward(self, x):
        b, t, w = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, w // self.heads).permute(
            2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(w // self.heads), dim=-1)
        a = (att @ v).transpose(1, 2).reshape(b, t, w)
        x = x + self.drop(self.proj(a))
        return x + self.drop(self.fc2(self.drop(F.relu(self.fc1(self.ln2(x))))))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(PATCH_DIM, WIDTH)
        self.cls = nn.Parameter(torch.randn(WIDTH) * 0.02)
        self.register_buffer("pos", positions(TOKENS, WIDTH))
        self.blocks = nn.ModuleList(Block(WIDTH, HEADS, MLP) for _ in range(DEPTH))
        self.norm = nn.LayerNorm(WIDTH)
        self.drop = nn.Dropout(0.1)

    def embed_patches(self, patches):
        return self.embed(patches) + self.pos

    def encode(self, tokens):
        cls = self.cls.expand(tokens.shape[0], 1, WIDTH)
        x = torch.cat([self.drop(tokens), cls], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


def patchify(images):
    b = images.shape[0]
    s = IMAGE // PATCH
    x = images.view(b, 3, s, PATCH, s, PATCH).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, TOKENS, PATCH_DIM)


class Mae(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.dec_embed = nn.Linear(WIDTH, DEC_WIDTH)
        self.mask_token = nn.Parameter(torch.randn(DEC_WIDTH) * 0.02)
        self.register_buffer("dec_pos", positions(TOKENS, DEC_WIDTH))
        self.blocks = nn.ModuleList(Block(DEC_WIDTH, DEC_HEADS, DEC_MLP) for _ in range(DEC_DEPTH))
        self.norm = nn.LayerNorm(DEC_WIDTH)
        self.head = nn.Linear(DEC_WIDTH, PATCH_DIM)

    def forward(self, images):
        patches = patchify(images)
        b = patches.shape[0]
        keep = TOKENS - round(0.75 * TOKENS)
        order = torch.rand(b, TOKENS).argsort(dim=1)
        restore = order.argsort(dim=1)
        ids_keep = order[:, :keep]
        tokens = self.encoder.embed_patches(patches)
        kept = tokens.gather(1, ids_keep[..., None].expand(-1, -1, WIDTH))
        d = self.dec_embed(self.encoder.encode(kept))
        full = torch.cat([d[:, :keep], self.mask_token.expand(b, TOKENS - keep, DEC_WIDTH)], 1)
        full = full.gather(1, restore[..., None].expand(-1, -1, DEC_WIDTH)) + self.dec_pos
        x = torch.cat([full, d[:, keep:]], 1)
        for blk in self.blocks:
            x = blk(x)
        pred = self.head(self.norm(x))[:, :TOKENS]
        mask = (restore >= keep).float()
        per_patch = ((pred - patches) ** 2).mean(-1)
        return (per_patch * mask).sum() / mask.sum()


class Classifier(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.bn = nn.BatchNorm1d(WIDTH)
        self.head = nn.Linear(WIDTH, 200)

    def forward(self, images):
        tokens = self.encoder.embed_patches(patchify(images))
        return self.head(self.bn(self.encoder.encode(tokens)[:, -1]))


def time_steps(step, steps):
    step()  # allocator warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) * 1000 / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="images per step (default 32)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images = torch.randn(args.batch, 3, IMAGE, IMAGE)
    labels = torch.arange(args.batch) % 200
    mae = Mae().train()
    opt = torch.optim.AdamW(mae.parameters(), lr=5e-4, weight_decay=0.15)

    def mae_step():
        opt.zero_grad(set_to_none=False)
        mae(images).backward()
        opt.step()

    clf = Classifier(mae.encoder).train()
    clf_opt = torch.optim.AdamW(clf.parameters(), lr=1e-3, weight_decay=0.05)

    def finetune_step():
        clf_opt.zero_grad(set_to_none=False)
        F.cross_entropy(clf(images), labels).backward()
        clf_opt.step()

    for name, step in [("mae-pretrain-step", mae_step), ("finetune-step", finetune_step)]:
        ms = time_steps(step, args.steps)
        print(json.dumps({
            "name": name,
            "batch": args.batch,
            "ms": ms,
            "images_per_second": args.batch / (ms / 1000),
        }), flush=True)


if __name__ == "__main__":
    main()
