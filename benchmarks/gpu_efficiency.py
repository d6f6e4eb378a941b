"""GPU efficiency in one call (issue 15, section 4): bf16 peak, LoRA training tokens/s and % of peak, GPU
inference texts/s, and the projected time of the seed project's job. Never run in CI; < 10 minutes on an H100/H200.

Steps, each guarded by the remaining time budget (``--budget-s``) and recorded as ``skipped`` when out of time:

1. **Peak**: a bf16 ``torch.mm`` of 8192^3 timed with CUDA events (the denominator of every "% of peak").
2. **LoRA training, 1.1B Llama** (TinyLlama-1.1B's shape, random init from a config, no download) through
   lexcoder's own ``add_lora`` (r=16 on all linear layers, fp32 adapters and head on a bf16 base, bf16
   autocast): micro-batch x sequence length swept (8 x 512 is the 2026-11-26 baseline: 26k tokens/s = 13%),
   then the best setting under ``torch.compile``. Steps are timed with CUDA events over the whole timed window
   (no per-step host sync). Model FLOPs = 4 x matmul parameters per token (frozen base: forward + input
   gradients; the LoRA weight gradients and attention scores are left out, so % of peak is a lower bound).
3. **Padding waste**: real ToS sentence lengths in lexcoder's length-grouped batches of 8 texts vs the
   same tokens with no padding at all (what packed, padding-free batches would train: measured as the
   tokens/s of full rows, since lexcoder's training loop does not pack sequences yet).
4. **LoRA training, 7B Llama** (Llama-2-7B's shape) at the best micro-batch of step 2 -> tokens/s, % of peak,
   and the projection of the seed's job: ``--labels`` (11) one-label models x ``--epochs`` (5) x
   ``--texts`` texts of ``--tokens-per-text`` tokens (plus one validation pass per epoch over
   ``--val-share`` of them), in hours on this GPU.
5. **Inference texts/s**: a MiniLM-shaped encoder (6 layers, hidden 384; fp32 weights under bf16 autocast, as
   lexcoder runs it on CUDA) and the 1.1B Llama classifier (bf16 weights), length-sorted batches of real ToS
   sentence lengths, batch sizes swept.

    python benchmarks/gpu_efficiency.py --out $OUT/gpu_efficiency.json     # on a CUDA GPU
    python benchmarks/gpu_efficiency.py --dry-run                          # CPU smoke test: tiny shapes, seconds
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
NUM_LABELS = 9
LLAMA_1B = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=4096)
LLAMA_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)
MINILM = dict(vocab_size=30522, hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
              num_attention_heads=12, max_position_embeddings=512)
TINY_LLAMA = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
TINY_BERT = dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2, max_position_embeddings=512)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU smoke test: tiny models, 2 steps, seconds")
    ap.add_argument("--budget-s", type=float, default=540, help="stop starting new steps after this many seconds")
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps per training setting")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--train-settings", default="8x512,16x512,32x512,64x512,8x2048,16x2048",
                    help="micro-batch x sequence length settings of the 1.1B LoRA sweep")
    ap.add_argument("--compile", default="on", choices=["on", "off"], help="also time torch.compile on the best")
    ap.add_argument("--skip-7b", action="store_true")
    ap.add_argument("--encoder-batches", default="16,64,256,1024")
    ap.add_argument("--llm-batches", default="8,32,128")
    ap.add_argument("--inference-texts", type=int, default=4096)
    # the seed project's job (its data size is not recorded in this repository: pass the real one)
    ap.add_argument("--labels", type=int, default=11)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--texts", type=int, default=10000, help="training texts of the seed's data (assumed)")
    ap.add_argument("--tokens-per-text", type=int, default=512, help="mean tokens per text (assumed)")
    ap.add_argument("--val-share", type=float, default=0.25, help="validation texts per training text")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.dry_run:
        args.steps, args.warmup, args.inference_texts = 2, 1, 64
        args.train_settings, args.encoder_batches, args.llm_batches = "2x32,4x32", "8,32", "4,16"
    return args


# -- timing -------------------------------------------------------------------------------------------
class Timer:
    """Seconds of GPU work between start() and stop() (CUDA events; wall clock on CPU), one host sync."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        if self.cuda:
            self.a, self.b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.a.record()
        self.t0 = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self.b.record()
            self.b.synchronize()
            return self.a.elapsed_time(self.b) / 1000
        return time.perf_counter() - self.t0


def release(device: torch.device) -> None:
    if device.type == "cuda":  # (a CPU dry run skips the collection: seconds on a large heap)
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_tflops(device: torch.device, dry: bool) -> float:
    """Measured bf16 (CUDA) / fp32 (CPU) matmul rate in TFLOP/s: the best of 3 timed batches of products."""
    n, reps = (256, 3) if dry else (8192, 20)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    timer, best = Timer(device), 0.0
    for _ in range(4):
        timer.start()
        for _ in range(reps):
            torch.mm(a, b)
        best = max(best, 2 * n ** 3 * reps / timer.stop() / 1e12)
    return best


# -- models -------------------------------------------------------------------------------------------
def llama_classifier(shape: dict, device: torch.device) -> torch.nn.Module:
    """A random LlamaForSequenceClassification built in place, as ``load_backbone`` returns it (bf16 on CUDA,
    pad token set, no KV cache): no checkpoint written or read (a 7B one would take minutes)."""
    from transformers import LlamaConfig, LlamaForSequenceClassification
    config = LlamaConfig(**shape, num_labels=NUM_LABELS, problem_type="multi_label_classification",
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, use_cache=False)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.device(device):
        return LlamaForSequenceClassification(config).to(dtype)


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters of the Linear layers a token goes through (embeddings and the head excluded)."""
    return sum(m.weight.numel() for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and "lora_" not in n and not n.endswith(("score", "classifier")))


def lora_model(shape: dict, device: torch.device) -> torch.nn.Module:
    from lexcoder.models.llm import LLMClassifier, add_lora
    params = {**LLMClassifier().get_params(), "device": device.type}
    model = add_lora(llama_classifier(shape, device), params, device)
    return model.train()


# -- training -----------------------------------------------------------------------------------------
def train_rate(model, batches: list[torch.Tensor], device: torch.device, warmup: int, real_tokens: int | None = None
               ) -> dict:
    """Optimizer steps over ``batches`` (token id matrices; 0 = padding) after ``warmup`` untimed ones."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=2e-4, fused=device.type == "cuda")
    gen = torch.Generator(device=device).manual_seed(0)

    def step(ids: torch.Tensor) -> torch.Tensor:
        y = torch.randint(0, 2, (ids.shape[0], NUM_LABELS), generator=gen, device=device).float()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(input_ids=ids, attention_mask=(ids != 0).long()).logits.float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    for ids in batches[:warmup]:
        step(ids)
    timer = Timer(device)
    timer.start()
    losses = [step(ids) for ids in batches[warmup:]]  # no .item() inside the loop: no host sync per step
    seconds = timer.stop()
    timed = batches[warmup:]
    tokens = sum(int(b.numel()) for b in timed)
    out = {"tokens_per_s": round(tokens / seconds, 1), "step_s": round(seconds / len(timed), 4),
           "final_loss": round(float(torch.stack(losses)[-1]), 4)}
    if real_tokens is not None:
        out["real_tokens_per_s"] = round(real_tokens / seconds, 1)
    if device.type == "cuda":
        out["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def random_batches(n: int, batch: int, seq: int, vocab: int, device: torch.device) -> list[torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(1)
    return [torch.randint(3, vocab, (batch, seq), generator=gen, device=device) for _ in range(n)]


def sweep_lora(model, settings: list[tuple[int, int]], args, device, vocab: int, peak: float, n_matmul: int,
               deadline: float) -> list[dict]:
    rows = []
    for batch, seq in settings:
        row = {"micro_batch": batch, "seq_len": seq}
        if time.perf_counter() > deadline:
            rows.append({**row, "status": "skipped: out of time"})
            continue
        try:
            release(device)
            row.update(train_rate(model, random_batches(args.warmup + args.steps, batch, seq, vocab, device),
                                  device, args.warmup))
            row.update(status="ok", pct_of_peak=round(100 * 4 * n_matmul * row["tokens_per_s"] / (peak * 1e12), 1))
        except torch.OutOfMemoryError:
            row["status"] = "out of memory"
        rows.append(row)
        print(f"  LoRA {batch:>3} x {seq:<5} {row.get('tokens_per_s', '-'):>10} tokens/s "
              f"{row.get('pct_of_peak', '-'):>5}% of peak  {row['status']}", flush=True)
    return rows


def sentence_lengths(n: int, cap: int, seed: int = 0) -> np.ndarray:
    """Token lengths of ``n`` real ToS sentences (1.3 tokens per word, a BPE tokenizer's rate; + 2 specials)."""
    import pandas as pd
    from lexcoder.demo import demo_data_path
    words = pd.read_csv(demo_data_path(), usecols=["text"])["text"].str.split().str.len().to_numpy()
    lengths = np.minimum(np.ceil(words * 1.3).astype(int) + 2, cap)
    return np.random.default_rng(seed).choice(lengths, n, replace=True)


def padding_waste(model, args, device, vocab: int, batch: int, cap: int, deadline: float) -> dict:
    """lexcoder's length-grouped batches of ToS sentences (padded to each batch's longest) vs the same real
    tokens in full rows (no padding: the upper bound packing would reach)."""
    from lexcoder.models.windows import length_grouped_batches
    if time.perf_counter() > deadline:
        return {"status": "skipped: out of time"}
    n_batches = args.warmup + args.steps
    lengths = sentence_lengths(batch * n_batches * 4, cap)
    groups = length_grouped_batches(np.arange(len(lengths)), lengths, batch, np.random.default_rng(0))[:n_batches]
    gen = torch.Generator(device=device).manual_seed(2)
    padded = []
    for g in groups:
        ids = torch.zeros(len(g), int(lengths[g].max()), dtype=torch.long, device=device)
        for r, t in enumerate(g):
            ids[r, :lengths[t]] = torch.randint(3, vocab, (int(lengths[t]),), generator=gen, device=device)
        padded.append(ids)
    real = int(sum(lengths[g].sum() for g in groups[args.warmup:]))
    grouped = train_rate(model, padded, device, args.warmup, real_tokens=real)
    seq = max(8, int(np.percentile(lengths, 99)))
    per_row = max(1, real // (args.steps * seq))  # full rows carrying the same real tokens per step
    full = train_rate(model, random_batches(n_batches, per_row, seq, vocab, device), device, args.warmup)
    return {"status": "ok", "texts_per_batch": batch, "mean_tokens": round(float(lengths.mean()), 1),
            "grouped_padded": grouped, "full_rows": {**full, "rows": per_row, "seq_len": seq},
            "padding_share": round(1 - real / sum(int(b.numel()) for b in padded[args.warmup:]), 4)}


def compiled_rate(shape, args, device, vocab, best: dict, peak: float, n_matmul: int, deadline: float) -> dict:
    if args.compile == "off" or device.type != "cuda":
        return {"status": "skipped: " + ("--compile off" if args.compile == "off" else "CUDA only")}
    if time.perf_counter() > deadline - 120:
        return {"status": "skipped: out of time"}
    release(device)
    model = lora_model(shape, device)
    model.compile()  # compiles each submodule's forward in place; the first steps pay for compilation
    t0 = time.perf_counter()
    batches = random_batches(args.warmup + 2 + args.steps, best["micro_batch"], best["seq_len"], vocab, device)
    out = train_rate(model, batches, device, args.warmup + 2)
    out.update(status="ok", micro_batch=best["micro_batch"], seq_len=best["seq_len"],
               compile_and_run_s=round(time.perf_counter() - t0, 1),
               pct_of_peak=round(100 * 4 * n_matmul * out["tokens_per_s"] / (peak * 1e12), 1))
    del model
    release(device)
    return out


def seed_projection(args, tokens_per_s: float) -> dict:
    """Hours of the seed's job at a measured 7B LoRA rate: one model per label, every epoch over all texts,
    one validation pass per epoch (forward only: about half a training token's cost)."""
    train_tokens = args.labels * args.epochs * args.texts * args.tokens_per_text
    val_tokens = args.labels * args.epochs * args.texts * args.val_share * args.tokens_per_text
    seconds = (train_tokens + 0.5 * val_tokens) / tokens_per_s
    return {"labels": args.labels, "epochs": args.epochs, "texts": args.texts,
            "tokens_per_text": args.tokens_per_text, "val_share": args.val_share,
            "assumption": "texts and tokens_per_text are assumed (the seed's data size is not recorded here)",
            "train_tokens": train_tokens, "tokens_per_s_7b": tokens_per_s,
            "hours": round(seconds / 3600, 2), "minutes": round(seconds / 60, 1)}


# -- inference ----------------------------------------------------------------------------------------
def inference_rates(model, lengths: np.ndarray, batch_sizes: list[int], device, vocab: int, autocast: bool,
                    deadline: float) -> list[dict]:
    """texts/s of ``model`` over texts of ``lengths`` in length-sorted batches (lexcoder's prediction order)."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(3)
    order = np.sort(lengths)
    rows = []
    for bs in batch_sizes:
        if time.perf_counter() > deadline:
            rows.append({"batch_size": bs, "status": "skipped: out of time"})
            continue
        batches = [torch.randint(3, vocab, (len(order[i:i + bs]), int(order[i:i + bs].max())), generator=gen,
                                 device=device) for i in range(0, len(order), bs)]
        try:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                model(input_ids=batches[0], attention_mask=torch.ones_like(batches[0]))  # warm-up
                timer = Timer(device)
                timer.start()
                for ids in batches:
                    model(input_ids=ids, attention_mask=torch.ones_like(ids))
                seconds = timer.stop()
            rows.append({"batch_size": bs, "status": "ok", "texts_per_s": round(len(order) / seconds, 1)})
        except torch.OutOfMemoryError:
            rows.append({"batch_size": bs, "status": "out of memory"})
        release(device)
    return rows


def minilm_encoder(shape: dict, device: torch.device) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(0)
    config = BertConfig(**shape, num_labels=NUM_LABELS, problem_type="multi_label_classification")
    return BertForSequenceClassification(config).to(device)  # fp32 weights: lexcoder autocasts on CUDA


# -- the session --------------------------------------------------------------------------------------
def environment(device: torch.device) -> dict:
    env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
           "python": platform.python_version()}
    if device.type == "cuda":
        env.update(gpu_mem_gib=round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1),
                   cuda=torch.version.cuda)
    for pkg in ("torch", "transformers", "peft", "flash-attn"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = None
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        print("gpu_efficiency.py measures a CUDA GPU and this machine has none; use --dry-run for a CPU smoke "
              "test of the script.", file=sys.stderr)
        return 2
    device = torch.device("cuda" if cuda and not args.dry_run else "cpu")
    t_start = time.perf_counter()
    deadline = t_start + args.budget_s
    llama_1b, llama_7b = (TINY_LLAMA, TINY_LLAMA) if args.dry_run else (LLAMA_1B, LLAMA_7B)
    encoder_shape = TINY_BERT if args.dry_run else MINILM
    result: dict = {"benchmark": "gpu_efficiency", "dry_run": args.dry_run, "environment": environment(device)}

    peak = peak_tflops(device, args.dry_run)
    result["peak_tflops"] = {"dtype": "bf16" if device.type == "cuda" else "fp32", "matmul": round(peak, 1)}
    print(f"{result['environment']['device']}: matmul peak {peak:.1f} TFLOP/s", flush=True)

    model = lora_model(llama_1b, device)
    n_matmul = matmul_params(model)
    settings = [tuple(int(x) for x in s.split("x")) for s in args.train_settings.split(",")]
    rows = sweep_lora(model, settings, args, device, llama_1b["vocab_size"], peak, n_matmul, deadline)
    ok = [r for r in rows if r["status"] == "ok"]
    best = max(ok, key=lambda r: r["tokens_per_s"]) if ok else None
    result["lora_1b"] = {"params": sum(p.numel() for p in model.parameters()), "matmul_params": n_matmul,
                         "shape": llama_1b, "rows": rows, "best": best}
    result["padding"] = padding_waste(model, args, device, llama_1b["vocab_size"], 8,
                                      32 if args.dry_run else 512, deadline)
    del model
    release(device)
    if best:
        result["lora_1b"]["compiled"] = compiled_rate(llama_1b, args, device, llama_1b["vocab_size"], best, peak,
                                                      n_matmul, deadline)

    if args.skip_7b or not best:
        result["lora_7b"] = {"status": "skipped" + ("" if best else ": no 1.1B setting ran")}
    elif time.perf_counter() > deadline - 90:
        result["lora_7b"] = {"status": "skipped: out of time"}
    else:
        model = lora_model(llama_7b, device)
        n7 = matmul_params(model)
        rows7 = []
        # the 1.1B's best micro-batch, halved while a 7B's activations do not fit (same tokens per row)
        for batch in sorted({max(1, best["micro_batch"] >> k) for k in range(4)}, reverse=True):
            rows7 += sweep_lora(model, [(batch, best["seq_len"])], args, device, llama_7b["vocab_size"], peak, n7,
                                deadline)
            if rows7[-1]["status"] != "out of memory":
                break
        result["lora_7b"] = {"matmul_params": n7, "shape": llama_7b, "rows": rows7}
        if rows7[-1]["status"] == "ok":
            result["seed_job"] = seed_projection(args, rows7[-1]["tokens_per_s"])
        del model
        release(device)

    lengths = sentence_lengths(args.inference_texts, 128)
    enc = minilm_encoder(encoder_shape, device)
    result["inference"] = {"texts": "ToS sentence lengths (1.3 tokens/word), max 128 tokens, length-sorted",
                           "mean_tokens": round(float(lengths.mean()), 1)}
    result["inference"]["minilm"] = inference_rates(enc, lengths, [int(b) for b in args.encoder_batches.split(",")],
                                                    device, encoder_shape["vocab_size"], device.type == "cuda",
                                                    deadline)
    del enc
    release(device)
    llm = llama_classifier(llama_1b, device)
    result["inference"]["llama_1b"] = inference_rates(llm, lengths, [int(b) for b in args.llm_batches.split(",")],
                                                      device, llama_1b["vocab_size"], False, deadline)
    del llm
    release(device)
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    out = args.out or RESULTS / ("gpu_efficiency_dry_run.json" if args.dry_run else "gpu_efficiency.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print_summary(result)
    print(f"wrote {out}")
    return 0


def print_summary(result: dict) -> None:
    b = result["lora_1b"].get("best")
    if b:
        print(f"LoRA 1.1B best: {b['micro_batch']} x {b['seq_len']}: {b['tokens_per_s']:,.0f} tokens/s = "
              f"{b['pct_of_peak']}% of peak")
    c = result["lora_1b"].get("compiled", {})
    if c.get("status") == "ok":
        print(f"  compiled: {c['tokens_per_s']:,.0f} tokens/s = {c['pct_of_peak']}% of peak")
    p = result["padding"]
    if p.get("status") == "ok":
        print(f"padding: {100 * p['padding_share']:.1f}% of grouped-batch tokens are padding; real tokens/s grouped "
              f"{p['grouped_padded']['real_tokens_per_s']:,.0f} vs full rows {p['full_rows']['tokens_per_s']:,.0f}")
    s = result.get("seed_job")
    if s:
        print(f"seed job ({s['labels']} labels x {s['epochs']} epochs x {s['texts']} texts x {s['tokens_per_text']} "
              f"tokens, 7B): {s['hours']} h at {s['tokens_per_s_7b']:,.0f} tokens/s")
    for name, rows in (("MiniLM", result["inference"]["minilm"]), ("Llama 1.1B", result["inference"]["llama_1b"])):
        print(f"inference {name}: " + ", ".join(f"bs {r['batch_size']}: {r.get('texts_per_s', r['status'])}"
                                                for r in rows))


if __name__ == "__main__":
    sys.exit(main())
