"""GPU benchmark: LoRA (bf16) and QLoRA (4-bit NF4) training throughput and peak memory of a ~1B Llama.

A Llama-shaped model (TinyLlama-1.1B's shape: 22 layers, hidden 2048, GQA 32/4 heads, vocabulary 32,000)
is initialised at random from a config (weights need not be pretrained for a throughput figure), saved
once in bf16, and loaded through lexcoder's own LLM building blocks (``load_backbone`` + ``add_lora``:
the same code path as ``[model] kind = "llm"``) as a multi-label sequence classifier. Each setting trains
for ``--steps`` timed optimizer steps on random token ids of fixed length after ``--warmup`` untimed ones.

    python benchmarks/gpu_lora_throughput.py                   # on a CUDA GPU (never in CI)
    python benchmarks/gpu_lora_throughput.py --tiny --allow-cpu  # smoke test of the script on CPU

Prints a table and writes JSON to benchmarks/results/gpu_lora_throughput.json (``--tiny`` runs write
gpu_lora_throughput_tiny.json instead, so a smoke test never overwrites GPU figures).
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
NUM_LABELS = 9  # as in the ToS data
REALISTIC = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                 num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048)
TINY = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="2-layer hidden-64 model (smoke test)")
    ap.add_argument("--allow-cpu", action="store_true", help="run without CUDA (with --tiny: a smoke test)")
    ap.add_argument("--seq-len", type=int, default=512, help="tokens per example")
    ap.add_argument("--batch-size", type=int, default=8, help="examples per optimizer step")
    ap.add_argument("--steps", type=int, default=20, help="timed optimizer steps per setting")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (kernels, allocator)")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--modes", default="lora,qlora", help="comma-separated: lora, qlora")
    ap.add_argument("--checkpointing", default="off,on",
                    help="gradient checkpointing settings to measure: off, on, or off,on")
    ap.add_argument("--out", type=Path, default=None, help="JSON output path")
    return ap.parse_args(argv)


def build_random_llama(shape: dict, directory: Path, device: torch.device) -> int:
    """Save a randomly initialised LlamaForCausalLM (bf16 on GPU, fp32 on CPU); return its parameter count."""
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    if device.type == "cuda":
        model = model.to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(directory, safe_serialization=True)
    del model
    release(device)
    return n_params


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def measure(source: Path, mode: str, checkpointing: bool, args: argparse.Namespace, vocab: int,
            device: torch.device) -> dict:
    """Train ``args.steps`` timed steps of one setting; tokens/s and peak GPU memory."""
    from lexcoder.models.llm import LLMClassifier, add_lora, check_4bit_support, load_backbone
    params = {**LLMClassifier(lora_r=args.lora_r).get_params(), "load_in_4bit": mode == "qlora",
              "gradient_checkpointing": checkpointing, "device": device.type}
    check_4bit_support(params)  # QLoRA without CUDA/bitsandbytes: a LexcoderError that explains why
    release(device)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = add_lora(load_backbone(str(source), NUM_LABELS, params, device, pad_token_id=0), params, device)
    if mode != "qlora":  # 4-bit weights are already placed on the GPU by device_map
        model.to(device)
    model.train()
    load_s = time.perf_counter() - t0
    weights_gib = torch.cuda.memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=2e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    step_times = []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(3, vocab, (args.batch_size, args.seq_len), generator=gen, device=device)
        y = torch.randint(0, 2, (args.batch_size, NUM_LABELS), generator=gen, device=device).float()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            step_times.append(time.perf_counter() - start)
    elapsed = sum(step_times)
    out = {"mode": mode, "gradient_checkpointing": checkpointing, "status": "ok",
           "tokens_per_s": round(args.batch_size * args.seq_len * args.steps / elapsed, 1),
           "examples_per_s": round(args.batch_size * args.steps / elapsed, 2),
           "step_s_median": round(sorted(step_times)[len(step_times) // 2], 4),
           "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
           "weights_mem_gib": round(weights_gib, 2) if device.type == "cuda" else None,
           "trainable_params": sum(p.numel() for p in trainable), "load_s": round(load_s, 1),
           "final_loss": round(float(loss.detach()), 4)}
    del model, opt, trainable
    release(device)
    return out


def environment(device: torch.device) -> dict:
    env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
           "python": platform.python_version()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu_mem_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                   bf16_supported=torch.cuda.is_bf16_supported())
    for pkg in ("torch", "transformers", "peft", "accelerate", "bitsandbytes"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = None
    return env


def print_table(rows: list[dict], header: str) -> None:
    print(header)
    print(f"{'mode':<6} {'ckpt':<4} {'tokens/s':>10} {'ex/s':>8} {'step s':>8} {'peak GiB':>9} "
          f"{'weights GiB':>11} {'trainable':>11}  status")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['mode']:<6} {'on' if r['gradient_checkpointing'] else 'off':<4} {'—':>10} {'—':>8} "
                  f"{'—':>8} {'—':>9} {'—':>11} {'—':>11}  {r['status']}")
            continue
        mem = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"{r['mode']:<6} {'on' if r['gradient_checkpointing'] else 'off':<4} {r['tokens_per_s']:>10,.0f} "
              f"{r['examples_per_s']:>8.2f} {r['step_s_median']:>8.3f} {mem(r['peak_mem_gib']):>9} "
              f"{mem(r['weights_mem_gib']):>11} {r['trainable_params']:>11,}  ok")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_lora_throughput.py measures LoRA/QLoRA training on a CUDA GPU, and this machine has none "
              "(torch.cuda.is_available() is False). Run it on a GPU machine; for a CPU smoke test of the "
              "script use --tiny --allow-cpu.", file=sys.stderr)
        return 2
    from lexcoder.errors import LexcoderError
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = TINY if args.tiny else REALISTIC
    rows = []
    with tempfile.TemporaryDirectory(prefix="lexcoder-gpu-bench-") as tmp:
        n_params = build_random_llama(shape, Path(tmp), device)
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            for ckpt in [c.strip() == "on" for c in args.checkpointing.split(",") if c.strip()]:
                try:
                    rows.append(measure(Path(tmp), mode, ckpt, args, shape["vocab_size"], device))
                except LexcoderError as err:  # e.g. QLoRA without CUDA: recorded, not fatal
                    rows.append({"mode": mode, "gradient_checkpointing": ckpt, "status": f"skipped: {err}"})
                except torch.OutOfMemoryError:
                    release(device)
                    rows.append({"mode": mode, "gradient_checkpointing": ckpt, "status": "out of memory"})
    result = {"benchmark": "gpu_lora_throughput", "environment": environment(device),
              "model": {"architecture": "LlamaForSequenceClassification (random init)", "params": n_params,
                        **shape},
              "settings": {"seq_len": args.seq_len, "batch_size": args.batch_size, "steps": args.steps,
                           "warmup": args.warmup, "lora_r": args.lora_r, "target_modules": "all-linear",
                           "num_labels": NUM_LABELS, "compute": "bf16 autocast" if device.type == "cuda"
                           else "fp32 (CPU)"},
              "rows": rows}
    print_table(rows, f"{result['environment']['device']}: {n_params / 1e9:.2f}B-parameter Llama, "
                      f"batch {args.batch_size} × {args.seq_len} tokens, LoRA r={args.lora_r} all-linear")
    out = args.out or RESULTS / ("gpu_lora_throughput_tiny.json" if args.tiny else "gpu_lora_throughput.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
