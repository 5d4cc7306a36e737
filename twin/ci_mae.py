#!/usr/bin/env python3
"""PyTorch twin of a whole ci-profile MAE run: pre-training, then fine-tuning (test-only; torch only).

    python3 twin/ci_mae.py DIR

DIR (written by twin/ci_mae.ts, the harness side) holds:
- config.json: {"seed", "pretrain", "finetune"}, the two validated training configs
  of the harness's run (experiments pretrain-mae-random and finetune-mae-random of
  repro/profiles/ci.yaml, with the seed);
- data.safetensors: the harness's seeded subset (src/train/data.ts `subset`), as it
  trained on it: train_images (N, H, W) and eval_images (uint8 values), train_labels,
  eval_labels;
- init.safetensors: the harness's initial MAE (encoder.*, decoder.*) and the
  fine-tuning head (head.fc.*), drawn from the seed;
- harness_finetune.safetensors (optional): the harness's fine-tuned checkpoint, which
  the twin evaluates with its own pipeline (a check of data, normalisation and
  forward pass on the whole eval subset).

It trains with the same epochs, batch size, optimizer and schedule as the configs say,
from the same initial parameters and images, and writes DIR/twin_result.json: held-out
masked-patch MSE, the zero predictor's and their ratio after pre-training; top-1
accuracy after fine-tuning; the mean training loss of each stage's last epoch; the
learning rate of every epoch. What is random is drawn from torch's generator seeded
with the seed, not the harness's: the data order, the MAE masks (uniform noise,
argsort, keep the first K) and the dropout masks. So only agreement in distribution
is expected.

Model semantics are twin/twin.py's (pre-norm ViT with the class token last, ReLU MLPs,
qkv without bias, MAE decoder with the class token riding along, BatchNorm1d head),
with dropout where the harness puts it (src/models/vit.ts): on the (kept) tokens after
the positions, after the attention projection, after the first MLP layer's ReLU and
after the second MLP layer, in encoder and decoder blocks alike; none in the probe.
"""

import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from twin import attention, embed, make_schedule, positions, read_safetensors  # noqa: E402


def block(P, pre, x, heads, p, training):
    """x + drop(proj(attn(ln1 x))), then x + drop(fc2(drop(relu(fc1(ln2 x)))))."""
    g = lambda n: P[f"{pre}.{n}"]
    D = x.shape[-1]
    drop = lambda t: F.dropout(t, p, training)
    h = F.layer_norm(x, (D,), g("ln1.w"), g("ln1.b"), 1e-5)
    x = x + drop(F.linear(attention(h, g("qkv.w"), heads), g("proj.w"), g("proj.b")))
    m = F.layer_norm(x, (D,), g("ln2.w"), g("ln2.b"), 1e-5)
    f = F.linear(drop(F.relu(F.linear(m, g("fc1.w"), g("fc1.b")))), g("fc2.w"), g("fc2.b"))
    return x + drop(f)


def encode(P, enc, tokens, training):
    """Dropout on the tokens, the class token last, the blocks, the final LayerNorm."""
    p = enc["dropout"]
    x = F.dropout(tokens, p, training)
    x = torch.cat([x, P["encoder.cls"].reshape(1, 1, -1).expand(x.shape[0], 1, -1)], 1)
    for i in range(enc["depth"]):
        x = block(P, f"encoder.blocks.{i}", x, enc["heads"], p, training)
    return F.layer_norm(x, (enc["width"],), P["encoder.norm.w"], P["encoder.norm.b"], 1e-5)


def random_keep(B, T, keep, gen):
    """MAE's random masking: argsort of uniform noise, the first `keep` positions kept."""
    return torch.rand(B, T, generator=gen).argsort(1)[:, :keep]


def mae_forward(P, c, images, idx, training):
    """(loss, zero-predictor loss) of the MAE: masked-patch MSE (raw pixels) for kept positions idx."""
    enc, m = c["encoder"], c["mae"]
    patches, e = embed(P, enc, images)
    B, T, _ = patches.shape
    kept = e.gather(1, idx[:, :, None].expand(-1, -1, enc["width"]))
    z = F.linear(encode(P, enc, kept, training), P["decoder.embed.w"], P["decoder.embed.b"])
    dw = m["decoderWidth"]
    full = P["decoder.mask"].reshape(1, 1, dw).expand(B, T, dw)
    full = full.scatter(1, idx[:, :, None].expand(-1, -1, dw), z[:, :-1]) + positions(T, dw)
    x = torch.cat([full, z[:, -1:]], 1)
    for i in range(m["decoderDepth"]):
        x = block(P, f"decoder.blocks.{i}", x, m["decoderHeads"], enc["dropout"], training)
    x = F.layer_norm(x, (dw,), P["decoder.norm.w"], P["decoder.norm.b"], 1e-5)
    pred = F.linear(x[:, :-1], P["decoder.head.w"], P["decoder.head.b"])
    if m["normPixLoss"]:
        var, mean = torch.var_mean(patches, dim=-1, unbiased=False, keepdim=True)
        patches = (patches - mean) / (var + 1e-6) ** 0.5
    masked = torch.ones(B, T).scatter(1, idx, 0.0)
    per_patch = ((pred - patches) ** 2).mean(-1)
    zero = (patches**2).mean(-1)
    return (per_patch * masked).sum() / masked.sum(), (zero * masked).sum() / masked.sum()


def classifier_logits(P, c, images, bn, training):
    """Classifier logits: encoder (dropout unless probing), pooled features, BatchNorm1d, linear."""
    enc = dict(c["encoder"])
    if c["mode"] == "probe":
        enc["dropout"] = 0.0
    _, e = embed(P, enc, images)
    x = encode(P, enc, e, training)
    tokens, cls = x[:, :-1], x[:, -1]
    pool = enc["pool"]
    feats = cls if pool == "cls" else tokens.mean(1) if pool == "mean" else tokens.reshape(x.shape[0], -1)
    normed = F.batch_norm(feats, bn["mean"], bn["var"], training=training, momentum=0.1, eps=1e-5)
    return F.linear(normed, P["head.fc.w"], P["head.fc.b"])


FAULT = os.environ.get("CI_TWIN_FAULT", "")
if FAULT not in ("", "unit-scale"):
    sys.exit(f"ci_mae.py: CI_TWIN_FAULT={FAULT!r} is not one of ('unit-scale',)")


def normalise(u8, mode):
    """The loader's normalisation of a batch (N, H, W) of uint8 values to (N, 1, H, W) float32.
    CI_TWIN_FAULT=unit-scale (a deliberately wrong twin) uses x / 255 whatever the mode."""
    x = u8.to(torch.float64)
    if FAULT == "unit-scale":
        mode = "none"
    if mode == "batch":  # the batch's own scalar mean and unbiased std (of x / 255: the same)
        std = x.std() if x.numel() > 1 else torch.tensor(0.0)
        x = (x - x.mean()) / (std if std > 0 else 1.0)
    elif mode == "none":
        x = x / 255
    else:
        raise ValueError(f"ci_mae.py: normalisation {mode!r} is not one of batch, none (1 channel)")
    return x.to(torch.float32)[:, None]


def optimizer(c, params):
    """AdamW with decay on the weight matrices only, or Adam (the harness's AdamW, eps 1e-8)."""
    o = c["optim"]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    if o["name"] == "adam":
        return torch.optim.Adam(params, lr=o["lr"], betas=tuple(o["betas"]), eps=1e-8)
    groups = [{"params": decay, "weight_decay": o["weightDecay"]}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=o["lr"], betas=tuple(o["betas"]), eps=1e-8)


def schedule(c, opt):
    o = c["optim"]
    if o.get("stepping", "epoch") != "epoch":
        raise ValueError("ci_mae.py: only optim.stepping: epoch is twinned")
    s = {"warmupEpochs": o["warmupEpochs"], "epochs": o["epochs"], "minLr": o.get("minLr", 0)}
    return make_schedule({"schedule": s}, opt)


def batches(n, batch, gen):
    """One epoch's index batches: a fresh permutation, full batches only (one if the set is smaller)."""
    perm = torch.randperm(n, generator=gen)
    if batch > n:
        return [perm]
    return [perm[i * batch : (i + 1) * batch] for i in range(n // batch)]


def train(c, P, trainable, step_loss, gen, data, log):
    """The training loop: per epoch a shuffled order, lr from the per-epoch schedule, AdamW."""
    opt = optimizer(c, trainable)
    sched = schedule(c, opt)
    images, labels = data["train_images"], data["train_labels"]
    lrs, last = [], float("nan")
    for epoch in range(c["optim"]["epochs"]):
        lrs.append(opt.param_groups[0]["lr"])
        total, steps = 0.0, 0
        for idx in batches(images.shape[0], c["optim"]["batchSize"], gen):
            x = normalise(images[idx], c["data"]["normalize"])
            opt.zero_grad(set_to_none=False)
            loss = step_loss(x, labels[idx])
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"ci_mae.py: {c['mode']} loss {loss.item()} in epoch {epoch + 1}")
            loss.backward()
            opt.step()
            total += loss.item()
            steps += 1
        last = total / max(1, steps)
        sched.step()
        log(f"{c['mode']} epoch {epoch + 1}/{c['optim']['epochs']}: loss {last:.4f}")
    return {"final_loss": last, "lr": lrs}


def eval_batches(data, c):
    images, labels = data["eval_images"], data["eval_labels"]
    B = c["optim"]["batchSize"]
    for i in range(0, images.shape[0], B):
        yield normalise(images[i : i + B], c["data"]["normalize"]), labels[i : i + B]


@torch.no_grad()
def evaluate_mae(P, c, data, gen):
    """Held-out masked-patch MSE and the zero predictor's (fresh masks per batch), image-weighted."""
    T = (c["encoder"]["imageSize"] // c["encoder"]["patch"]) ** 2
    keep = T - round(c["mae"]["maskRatio"] * T)
    s = z = n = 0.0
    for x, _ in eval_batches(data, c):
        loss, zero = mae_forward(P, c, x, random_keep(x.shape[0], T, keep, gen), False)
        s += loss.item() * x.shape[0]
        z += zero.item() * x.shape[0]
        n += x.shape[0]
    return {"mse": s / n, "mse_zero_predictor": z / n, "mse_ratio": s / z, "images": int(n)}


@torch.no_grad()
def evaluate_accuracy(P, c, data, bn):
    correct = n = 0
    for x, y in eval_batches(data, c):
        correct += (classifier_logits(P, c, x, bn, False).argmax(1) == y.long()).sum().item()
        n += x.shape[0]
    return {"accuracy": correct / n, "images": n}


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) == 2 else 2
    d = argv[1]
    torch.set_num_threads(int(os.environ.get("TWIN_THREADS", "2")))
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    pre, ft, seed = cfg["pretrain"], cfg["finetune"], cfg["seed"]
    if pre["mae"]["masking"] != "random" or pre["encoder"]["channels"] != 1:
        raise ValueError("ci_mae.py: only random masking on 1-channel images is twinned")
    for c in (pre, ft):
        if c["data"].get("augment", "none") != "none":
            raise ValueError(f"ci_mae.py: {c['mode']}: data.augment {c['data']['augment']} is not twinned")
    data = read_safetensors(os.path.join(d, "data.safetensors"))
    init = read_safetensors(os.path.join(d, "init.safetensors"))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    log = lambda s: print(f"ci_mae.py: {s} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    out = {"torch": torch.__version__, "seed": seed}

    # Pre-training: the MAE from the harness's init.
    P = {n: t.clone().requires_grad_(True) for n, t in init.items() if n.startswith(("encoder.", "decoder."))}
    T = (pre["encoder"]["imageSize"] // pre["encoder"]["patch"]) ** 2
    keep = T - round(pre["mae"]["maskRatio"] * T)
    mae_step = lambda x, _y: mae_forward(P, pre, x, random_keep(x.shape[0], T, keep, gen), True)[0]
    out["pretrain"] = train(pre, P, list(P.values()), mae_step, gen, data, log)
    out["pretrain"]["eval"] = evaluate_mae(P, pre, data, gen)
    log(f"pretrain eval: {out['pretrain']['eval']}")

    # Fine-tuning: the twin's own pre-trained encoder, the harness's initial head.
    Q = {n: t.detach().clone().requires_grad_(True) for n, t in P.items() if n.startswith("encoder.")}
    Q.update({n: t.clone().requires_grad_(True) for n, t in init.items() if n.startswith("head.")})
    dim = Q["head.fc.w"].shape[1]
    bn = {"mean": torch.zeros(dim), "var": torch.ones(dim)}
    trainable = [t for n, t in Q.items() if ft["mode"] != "probe" or n.startswith("head.")]
    ce = lambda x, y: F.cross_entropy(classifier_logits(Q, ft, x, bn, True), y.long())
    out["finetune"] = train(ft, Q, trainable, ce, gen, data, log)
    out["finetune"]["eval"] = evaluate_accuracy(Q, ft, data, bn)
    log(f"finetune eval: {out['finetune']['eval']}")

    # The harness's fine-tuned checkpoint through the twin's evaluation (deterministic).
    ckpt = os.path.join(d, "harness_finetune.safetensors")
    if os.path.exists(ckpt):
        H = read_safetensors(ckpt)
        hbn = {"mean": H["bn.running_mean"], "var": H["bn.running_var"]}
        out["harness_checkpoint"] = evaluate_accuracy(H, ft, data, hbn)
    tmp = os.path.join(d, "twin_result.json.tmp")
    with open(tmp, "w") as f:
        json.dump(out, f, indent=2)
    os.replace(tmp, os.path.join(d, "twin_result.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
