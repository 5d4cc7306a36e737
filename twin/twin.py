#!/usr/bin/env python3
"""PyTorch twin of the harness's training step (test-only; needs torch, nothing else).

Written from the paper ("[Re] Masked Autoencoders Are Small Scale Vision
Learners") and the harness's documented semantics, with PyTorch doing the
work: autograd for every gradient, torch.optim.AdamW / Adam for the update,
torch.optim.lr_scheduler's SequentialLR(LinearLR, CosineAnnealingLR) for the
schedule (what the authors' configs use, stepped per epoch).

    python3 twin/twin.py DIR

reads DIR/config.json, DIR/init.safetensors (every parameter, by the
harness's names), DIR/batch.safetensors (images, labels, per-step kept
indices for MAE, local crops for DINO) and DIR/trace.safetensors (the harness's parameters after
each step, used only for BN_NULL below), runs config.steps steps and writes DIR/twin.safetensors
(grad.<name> at step 1, param.<name> after the last step, bn.* for
classifiers) and DIR/twin.json (loss and lr per step).

Semantics (what the harness documents; twin/README.md lists where the
authors' code differs):
- patches in (py, px, c) order; linear patch embedding; fixed sinusoidal 1-D
  positions added to the patch tokens only;
- a learned class token appended last (no position); pre-norm blocks
  x + proj(attn(ln1 x)), x + fc2(relu(fc1(ln2 x))); qkv without bias; final
  LayerNorm (eps 1e-5 everywhere);
- MAE: the encoder sees the kept tokens; a linear map to the decoder width;
  kept tokens back in place, the mask token elsewhere; decoder positions on
  the patch tokens; the (projected) class token rides along last; decoder
  blocks, LayerNorm, linear head; loss = mean over masked patches of the
  per-patch MSE (raw pixels; per-patch standardised pixels, MAE's
  norm_pix_loss, in mode pretrain-normpix);
- classifier: class token / mean of patch tokens / flattened patch tokens,
  BatchNorm1d without affine (training mode), Linear; cross-entropy;
- SMAE: MSE over all patches; critic = SqueezeNet 1.1 features[:5] (frozen)
  on the unpatchified prediction and on the input (no gradient), MSE between
  them (through a sigmoid for the code's scaling); L = (1 - alpha) s_pix
  L_pixel + alpha s_perc L_percep with s_pix = 1, s_perc = L_pixel / L_percep
  at step 1 (paper), or each s the mean of the term's inverse over the
  calibration steps, frozen after (code);
- DINO: student on the two views (and on the local crops, batch "local",
  at their own size: fewer tokens with their own positions), teacher (no
  gradient) on the two views, targets softmax((t - centre) / teacher
  temperature), loss DINO's DINOLoss: the mean over the pairs (teacher
  view i, student crop v != i) of the cross-entropy against
  log softmax(s / 0.1); gradient clipping, last layer
  without gradient in the first epoch(s), AdamW with DINO's cosine weight
  decay, then the teacher's EMA (cosine momentum) and the centre's EMA.
  config.dino.semantics "harness" clips by the global norm, uses GELU's tanh
  form and zeroes the frozen layer's gradient (the harness's choices);
  "authors" does what DINO's code does (see twin/README.md);
- critic: the whole SqueezeNet 1.1 (torchvision layout; dropout off), its
  classifier a 1x1 convolution, ReLU and a global average; cross-entropy;
- AdamW decays only the weight matrices and conv kernels (ndim >= 2):
  biases, norms, tokens are exempt (MAE's convention).

TWIN_FAULT (environment) makes the twin deliberately wrong, to show the
comparison catches it: "no-bias-correction" (Adam without bias correction),
"gelu" (GELU instead of ReLU), "no-sigmoid" (the code's SMAE scaling without
the sigmoid on the critic features), "same-view-pairs" (DINO's loss also
pairing each teacher view with the student's own view); "cls-first" (class token first) is a control
that must still match (see twin/README.md).
"""

import json
import math
import os
import struct
import sys
import warnings

import torch
import torch.nn.functional as F

FAULT = os.environ.get("TWIN_FAULT", "")
FAULTS = ("", "no-bias-correction", "gelu", "no-sigmoid", "same-view-pairs", "cls-first")
if FAULT not in FAULTS:
    sys.exit(f"twin.py: TWIN_FAULT={FAULT!r} is not one of {FAULTS[1:]}")

# Under a BatchNorm head (training mode) the encoder's final LayerNorm weight
# and bias only scale and shift each feature, and the batch statistics undo
# that: BN(w f + b) = sign(w) BN_{eps / w^2}(f). Their true gradient is zero
# (bias) or of the order of BN's eps (weight), so each side computes
# cancellation noise, which Adam normalises into independent +-lr steps. The
# twin therefore follows the harness's trajectory for them
# (trace.safetensors); their step-1 gradients are compared on the scale of
# the model's largest gradient (run.ts, bnNullGradients).
BN_NULL = ("encoder.norm.w", "encoder.norm.b")

DTYPES = {"F32": torch.float32, "I32": torch.int32}


def read_safetensors(path):
    """name -> tensor, from a safetensors file (F32 / I32 only)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        if h["dtype"] not in DTYPES:
            raise ValueError(f"{path}: '{name}' has unsupported dtype {h['dtype']}")
        b, e = h["data_offsets"]
        buf = bytearray(data[8 + n + b : 8 + n + e])
        t = torch.frombuffer(buf, dtype=DTYPES[h["dtype"]]) if buf else torch.empty(0)
        out[name] = t.reshape(h["shape"]).clone()
    return out


def write_safetensors(path, tensors):
    """Writes f32 tensors (sorted by name) atomically: a temp name, then a rename."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    js = json.dumps(header).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + b"".join(blobs))
    os.replace(tmp, path)


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


# --- model --------------------------------------------------------------------


def positions(tokens, dim):
    """Sinusoidal 1-D positions (Vaswani et al.): sin on even, cos on odd columns."""
    pos = torch.arange(tokens, dtype=torch.float64)[:, None]
    freq = torch.pow(10000.0, torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    pe = torch.zeros(tokens, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos / freq)
    pe[:, 1::2] = torch.cos(pos / freq)[:, : dim // 2]
    return pe.to(torch.float32)


def patchify(images, p):
    """(B, C, H, W) -> (B, (H/p)(W/p), p*p*C), each patch as (py, px, c), patches row-major."""
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


def attention(x, w_qkv, heads):
    """Multi-head self-attention: q, k, v are the three width-sized parts of x W^T, heads contiguous."""
    B, T, D = x.shape
    qkv = F.linear(x, w_qkv).reshape(B, T, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    scores = (q @ k.transpose(-2, -1)) * (D // heads) ** -0.5
    out = scores.softmax(dim=-1) @ v
    return out.transpose(1, 2).reshape(B, T, D)


def block(P, pre, x, heads):
    """Pre-norm block: x + proj(attn(ln1 x)), then x + fc2(act(fc1(ln2 x)))."""
    g = lambda n: P[f"{pre}.{n}"]
    D = x.shape[-1]
    h = F.layer_norm(x, (D,), g("ln1.w"), g("ln1.b"), 1e-5)
    x = x + F.linear(attention(h, g("qkv.w"), heads), g("proj.w"), g("proj.b"))
    m = F.layer_norm(x, (D,), g("ln2.w"), g("ln2.b"), 1e-5)
    act = F.gelu if FAULT == "gelu" else F.relu
    return x + F.linear(act(F.linear(m, g("fc1.w"), g("fc1.b"))), g("fc2.w"), g("fc2.b"))


def join_cls(x, c):
    """Puts the class token c (B, 1, D) with the tokens x: last (the paper's code), or first under the control fault."""
    return torch.cat([c, x], 1) if FAULT == "cls-first" else torch.cat([x, c], 1)


def split_cls(x):
    """(patch tokens, class token) of a sequence built by join_cls."""
    return (x[:, 1:], x[:, :1]) if FAULT == "cls-first" else (x[:, :-1], x[:, -1:])


def encode(P, enc, tokens):
    """Class token, encoder blocks, final LayerNorm on embedded tokens (B, T', W)."""
    x = join_cls(tokens, P["encoder.cls"].reshape(1, 1, -1).expand(tokens.shape[0], 1, -1))
    for i in range(enc["depth"]):
        x = block(P, f"encoder.blocks.{i}", x, enc["heads"])
    return F.layer_norm(x, (enc["width"],), P["encoder.norm.w"], P["encoder.norm.b"], 1e-5)


def embed(P, enc, images):
    patches = patchify(images, enc["patch"])
    pe = positions(patches.shape[1], enc["width"])
    return patches, F.linear(patches, P["encoder.embed.w"], P["encoder.embed.b"]) + pe


def mae_reconstruct(P, cfg, images, ids_keep):
    """(predicted patches (B, T, P), target patches, kept-position index) for one masking."""
    enc, dec = cfg["encoder"], cfg["decoder"]
    patches, e = embed(P, enc, images)
    B, T, _ = patches.shape
    idx = ids_keep.long()
    kept = e.gather(1, idx[:, :, None].expand(-1, -1, enc["width"]))
    z = F.linear(encode(P, enc, kept), P["decoder.embed.w"], P["decoder.embed.b"])
    zk, zc = split_cls(z)
    dw = dec["width"]
    full = P["decoder.mask"].reshape(1, 1, dw).expand(B, T, dw)
    full = full.scatter(1, idx[:, :, None].expand(-1, -1, dw), zk) + positions(T, dw)
    x = join_cls(full, zc)
    for i in range(dec["depth"]):
        x = block(P, f"decoder.blocks.{i}", x, dec["heads"])
    x = F.layer_norm(x, (dw,), P["decoder.norm.w"], P["decoder.norm.b"], 1e-5)
    pred = F.linear(split_cls(x)[0], P["decoder.head.w"], P["decoder.head.b"])
    return pred, patches, idx


def mae_loss(P, cfg, images, ids_keep):
    """Masked-patch MSE of the MAE for one masking (ids_keep: (B, K) kept positions)."""
    pred, patches, idx = mae_reconstruct(P, cfg, images, ids_keep)
    if cfg["variant"] == "pretrain-normpix":
        # MAE's norm_pix_loss: each target patch standardised, (x - mean) / sqrt(var + 1e-6).
        var, mean = torch.var_mean(patches, dim=-1, unbiased=False, keepdim=True)
        patches = (patches - mean) / (var + 1e-6) ** 0.5
    masked = torch.ones(patches.shape[:2]).scatter(1, idx, 0.0)
    per_patch = ((pred - patches) ** 2).mean(-1)
    return (per_patch * masked).sum() / masked.sum()


def unpatchify(patches, p, shape):
    """Inverse of patchify: (B, T, p*p*C) -> (B, C, H, W)."""
    C, H, W = shape
    B = patches.shape[0]
    x = patches.reshape(B, H // p, W // p, p, p, C).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(B, C, H, W)


def fire(Q, i, x):
    """SqueezeNet Fire module features.i: squeeze 1x1 + ReLU, then [expand 1x1 + ReLU, expand 3x3 + ReLU]."""
    conv = lambda t, n, pad=0: F.relu(F.conv2d(t, Q[f"features.{i}.{n}.weight"], Q[f"features.{i}.{n}.bias"], padding=pad))
    s = conv(x, "squeeze")
    return torch.cat([conv(s, "expand1x1"), conv(s, "expand3x3", 1)], 1)


def squeeze_features(Q, x):
    """torchvision squeezenet1_1().features[:5]: conv 3x3 s2, ReLU, maxpool 3 s2 ceil, two Fire modules."""
    x = F.relu(F.conv2d(x, Q["features.0.weight"], Q["features.0.bias"], stride=2))
    x = F.max_pool2d(x, 3, 2, ceil_mode=True)
    return fire(Q, 4, fire(Q, 3, x))


def squeezenet_loss(Q, images, labels):
    """Cross-entropy of the whole SqueezeNet 1.1 (features, then conv 1x1 + ReLU + global mean)."""
    x = squeeze_features(Q, images)
    for i in (6, 7, 9, 10, 11, 12):
        if i in (6, 9):
            x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        x = fire(Q, i, x)
    y = F.relu(F.conv2d(x, Q["classifier.1.weight"], Q["classifier.1.bias"]))
    return F.cross_entropy(y.mean((2, 3)), labels.long())


def dino_forward(P, cfg, images):
    """DINO head logits (B, outDim) of a network P: class token -> MLP (GELU) -> L2 norm -> weight-normed last layer."""
    enc = cfg["encoder"]
    _, e = embed(P, enc, images)
    cls = split_cls(encode(P, enc, e))[1][:, 0]
    # nn.GELU (erf) in DINO's head; the harness's tanh form when told to follow it.
    approx = "tanh" if cfg["dino"]["semantics"] == "harness" else "none"
    h = F.gelu(F.linear(cls, P["head.fc1.w"], P["head.fc1.b"]), approximate=approx)
    h = F.gelu(F.linear(h, P["head.fc2.w"], P["head.fc2.b"]), approximate=approx)
    z = F.normalize(F.linear(h, P["head.fc3.w"], P["head.fc3.b"]), dim=-1)
    return z @ F.normalize(P["head.last.w"], dim=1).T


def dino_cosine(start, end, step, total):
    """DINO's cosine_scheduler value at `step` of `total` (weight decay, teacher momentum)."""
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * step / total))


def teacher_temperature(d, epoch):
    """Linear warmup of the teacher temperature over its epochs (np.linspace), then constant."""
    n = d["warmupTeacherTempEpochs"]
    if epoch >= n:
        return d["teacherTemp"]
    return torch.linspace(d["warmupTeacherTemp"], d["teacherTemp"], n, dtype=torch.float64)[epoch].item()


class LossBalance:
    """SMAE's term scaling: paper (c = pixel / perceptual on step 1) or the authors' code
    (each term times the mean of its inverse over the first calibration steps)."""

    def __init__(self, smae):
        self.alpha, self.scaling, self.steps = smae["alpha"], smae["scaling"], smae["calibrationSteps"]
        self.points = []

    def combine(self, pixel, perceptual):
        limit = 1 if self.scaling == "paper" else self.steps
        if len(self.points) < limit:
            self.points.append((pixel.item(), perceptual.item()))
        if self.scaling == "paper":
            s_pix, s_perc = 1.0, self.points[0][0] / self.points[0][1]
        else:
            s_pix = sum(1 / p for p, _ in self.points) / len(self.points)
            s_perc = sum(1 / q for _, q in self.points) / len(self.points)
        return (1 - self.alpha) * s_pix * pixel + self.alpha * s_perc * perceptual


def smae_loss(P, Q, cfg, images, ids_keep, balance):
    """SMAE: MSE over all patches and the critic-feature MSE of the reconstruction, balanced."""
    enc = cfg["encoder"]
    pred, patches, _ = mae_reconstruct(P, cfg, images, ids_keep)
    pixel = ((pred - patches) ** 2).mean()
    g = squeeze_features
    if cfg["smae"]["scaling"] == "code" and FAULT != "no-sigmoid":
        g = lambda Q, x: torch.sigmoid(squeeze_features(Q, x))
    recon = unpatchify(pred, enc["patch"], (enc["channels"], enc["imageSize"], enc["imageSize"]))
    with torch.no_grad():
        fx = g(Q, images)
    perceptual = ((g(Q, recon) - fx) ** 2).mean()
    return balance.combine(pixel, perceptual)


def classifier_loss(P, cfg, images, labels, bn):
    """Cross-entropy of the classifier (pooling cfg['pool']); updates bn's running statistics."""
    enc = cfg["encoder"]
    _, e = embed(P, enc, images)
    tokens, cls = split_cls(encode(P, enc, e))
    B = images.shape[0]
    pool = cfg["pool"]
    feats = cls[:, 0] if pool == "cls" else tokens.mean(1) if pool == "mean" else tokens.reshape(B, -1)
    normed = F.batch_norm(feats, bn["mean"], bn["var"], training=True, momentum=0.1, eps=1e-5)
    logits = F.linear(normed, P["head.fc.w"], P["head.fc.b"])
    return F.cross_entropy(logits, labels.long())


# --- optimizer and schedule ---------------------------------------------------


def make_optimizer(cfg, params):
    """AdamW (decay on weight matrices and kernels only) or Adam, as the harness's config names it."""
    o = cfg["optim"]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    wd = 0.0 if o["name"] == "adam" else o["weightDecay"]
    groups = [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]
    betas = tuple(o["betas"])
    if FAULT == "no-bias-correction":
        return UncorrectedAdamW(groups, lr=o["lr"], betas=betas, eps=o["eps"])
    if o["name"] == "adam":
        return torch.optim.Adam(params, lr=o["lr"], betas=betas, eps=o["eps"])
    return torch.optim.AdamW(groups, lr=o["lr"], betas=betas, eps=o["eps"])


class UncorrectedAdamW(torch.optim.Optimizer):
    """The deliberately wrong optimizer: AdamW without bias correction."""

    def __init__(self, params, lr, betas, eps):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": 0.0})

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                s = self.state[p]
                if not s:
                    s["m"], s["v"] = torch.zeros_like(p), torch.zeros_like(p)
                s["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                s["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                p.mul_(1 - g["lr"] * g["weight_decay"])
                p.addcdiv_(s["m"], s["v"].sqrt().add_(g["eps"]), value=-g["lr"])


def make_schedule(cfg, opt):
    """The authors' schedule: LinearLR from lr/3 over the warmup epochs, then cosine to 0."""
    s = cfg["schedule"]
    warm, epochs = s["warmupEpochs"], s["epochs"]
    linear = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / 3, total_iters=warm)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs - warm), eta_min=s["minLr"])
    # SequentialLR restarts the cosine with step(0) at the milestone, which torch 1.13 warns about.
    warnings.filterwarnings("ignore", message="The epoch parameter", category=UserWarning)
    return torch.optim.lr_scheduler.SequentialLR(opt, [linear, cosine], milestones=[warm])


# --- run ----------------------------------------------------------------------


def dino_loss(s_out, t_out, centre, temp, d, crops):
    """DINO's DINOLoss: the student's outputs in `crops` chunks [view 1, view 2, local 1..N], the
    teacher's targets in 2 chunks [view 1, view 2]; the mean over the pairs (teacher view i, student
    crop v), v != i, of the batch-mean cross-entropy."""
    student = (s_out / d["studentTemp"]).chunk(crops)
    targets = ((t_out - centre) / temp).softmax(-1).detach().chunk(2)
    total, terms = 0.0, 0
    for i, q in enumerate(targets):
        for v, s in enumerate(student):
            if v == i and FAULT != "same-view-pairs":
                continue
            total = total + (-q * F.log_softmax(s, -1)).sum(-1).mean()
            terms += 1
    return total / terms


def dino_step(S, T, centre, cfg, opt, images, local, step, params, norms):
    """One DINO step up to the optimizer: loss over the two views (and the local crops), backward,
    clipping, last-layer freeze. Returns the loss and the teacher's raw outputs (for the centre)."""
    d = cfg["dino"]
    spe = cfg["schedule"]["stepsPerEpoch"]
    epoch = step // spe
    total = cfg["schedule"]["epochs"] * spe
    opt.param_groups[0]["weight_decay"] = dino_cosine(cfg["optim"]["weightDecay"], d["weightDecayEnd"], step, total)
    with torch.no_grad():
        t_out = dino_forward(T, cfg, images)  # the global views only
    s_out = dino_forward(S, cfg, images)
    crops = 2
    if local is not None:
        # Local crops go through the student only, at their own size (fewer tokens, own positions).
        s_out = torch.cat([s_out, dino_forward(S, cfg, local)])
        crops += d["localCrops"]
    loss = dino_loss(s_out, t_out, centre, teacher_temperature(d, epoch), d, crops)
    loss.backward()
    total = torch.norm(torch.stack([p.grad.norm(2) for p in params]), 2).item()
    norms.append(total)
    if d["semantics"] == "harness":
        torch.nn.utils.clip_grad_norm_(params, d["clipGrad"])
    else:
        for p in params:  # DINO's utils.clip_gradients: each parameter on its own
            coef = d["clipGrad"] / (p.grad.norm(2) + 1e-6)
            if coef < 1:
                p.grad.mul_(coef)
    if epoch < d["freezeLastLayerEpochs"]:
        if d["semantics"] == "harness":
            S["head.last.w"].grad.zero_()
        else:
            S["head.last.w"].grad = None  # DINO: no gradient, so AdamW skips V (no decay, no step)
    return loss, t_out


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) == 2 else 2
    d = argv[1]
    torch.manual_seed(0)  # nothing random is drawn; set anyway so a slip would be repeatable
    torch.set_num_threads(int(os.environ.get("TWIN_THREADS", "1")))
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    init = read_safetensors(os.path.join(d, "init.safetensors"))
    batch = read_safetensors(os.path.join(d, "batch.safetensors"))
    Q = {n[len("critic."):]: t for n, t in init.items() if n.startswith("critic.")}
    P = {n: t.clone() for n, t in init.items() if not n.startswith(("critic.", "teacher."))}
    T = {n[len("teacher."):]: t.clone() for n, t in init.items() if n.startswith("teacher.")}
    mode = cfg["mode"]
    centre = torch.zeros(cfg["dino"]["outDim"]) if mode == "dino" else None
    balance = LossBalance(cfg["smae"]) if mode == "smae" else None
    frozen = (lambda n: not n.startswith("head.")) if mode == "probe" else (lambda n: False)
    train = []
    for n, t in P.items():
        t.requires_grad_(not frozen(n))
        if t.requires_grad:
            train.append(t)
    opt = make_optimizer(cfg, train)
    sched = make_schedule(cfg, opt)
    spe = cfg["schedule"]["stepsPerEpoch"]
    bn = None
    if mode in ("probe", "finetune", "scratch"):
        dim = P["head.fc.w"].shape[1]
        bn = {"mean": torch.zeros(dim), "var": torch.ones(dim)}
    images, labels = batch["images"], batch["labels"]
    trace = read_safetensors(os.path.join(d, "trace.safetensors"))
    losses, lrs, grads, followed, norms = [], [], {}, [], []
    for step in range(cfg["steps"]):
        lr = opt.param_groups[0]["lr"]
        opt.zero_grad(set_to_none=False)
        if mode == "dino":
            loss, t_out = dino_step(P, T, centre, cfg, opt, images, batch.get("local"), step, train, norms)
        else:
            if mode == "pretrain":
                loss = mae_loss(P, cfg, images, batch["ids_keep"][step])
            elif mode == "critic":
                loss = squeezenet_loss(P, images, labels)
            elif mode == "smae":
                loss = smae_loss(P, Q, cfg, images, batch["ids_keep"][step], balance)
            else:
                loss = classifier_loss(P, cfg, images, labels, bn)
            loss.backward()
        if step == 0:
            grads = {f"grad.{n}": (t.grad if t.grad is not None else torch.zeros_like(t)).clone() for n, t in P.items() if t.requires_grad}
            followed = [n for n in BN_NULL if bn is not None and P[n].requires_grad]
        opt.step()
        with torch.no_grad():
            for n in followed:
                P[n].copy_(trace[f"step{step + 1}.{n}"])
            if mode == "dino":
                dc = cfg["dino"]
                m = dino_cosine(dc["teacherMomentum"], 1.0, step, cfg["schedule"]["epochs"] * spe)
                for n in T:
                    T[n].mul_(m).add_(P[n], alpha=1 - m)
                centre.mul_(dc["centerMomentum"]).add_(t_out.mean(0), alpha=1 - dc["centerMomentum"])
        losses.append(loss.item())
        lrs.append(lr)
        if (step + 1) % spe == 0:
            sched.step()  # stepped per epoch, as the authors' training loop does
    out = dict(grads)
    out.update({f"param.{n}": t for n, t in P.items()})
    if bn is not None:
        out["bn.running_mean"], out["bn.running_var"] = bn["mean"], bn["var"]
    if mode == "dino":
        out.update({f"teacher.{n}": t for n, t in T.items()})
        out["dino.centre"] = centre
    write_safetensors(os.path.join(d, "twin.safetensors"), out)
    write_json(os.path.join(d, "twin.json"), {"loss": losses, "lr": lrs, "followed": followed, "gradNorm": norms, "torch": torch.__version__, "fault": FAULT})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
