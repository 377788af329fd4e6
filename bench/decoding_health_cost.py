"""Cost of ``attention_health.layers``: the test decoding against the teacher-forced pass that
scores every decoder layer and head (:func:`attnlab.decode.translate.decoding_health`), timed in
one process on one thread, with the checkpoint's own decoding settings (the default: beam 5).

    python bench/decoding_health_cost.py RUN/checkpoints/best.pt [--sentences 500]

Prints both times, their ratio, the search's own health and every layer and head's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from attnlab.__main__ import config_dir
from attnlab.attention.health import attention_health
from attnlab.data.text import load_corpus
from attnlab.decode.translate import decoding_health, translate_sentences
from attnlab.tasks.translation import load_for_inference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--sentences", type=int, default=500, help="test sentences (0 = all)")
    parser.add_argument("--model", default="transformer", help="the checkpoint's model name")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = [f"model={args.model}", "mode=evaluate", f"checkpoint={args.checkpoint}", "trainer.num_threads=1",
                 f"data.max_eval_sentences={args.sentences}"]
    with initialize_config_dir(config_dir=str(Path(config_dir())), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    device = torch.device("cpu")
    saved, model, toks = load_for_inference(cfg, device)
    test = load_corpus(saved.data).test
    start = time.perf_counter()
    found = translate_sentences(model, toks, test.sources, saved.decode, device, need_weights=True)
    decoded = time.perf_counter()
    health = decoding_health(model, toks.src.encode_batch(list(test.sources)), found, saved.decode.batch_size, device)
    scored = time.perf_counter()
    print(f"beam {saved.decode.beam_size}, {len(found)} sentences: decoding {decoded - start:.2f} s, "
          f"teacher-forced health {scored - decoded:.2f} s, ratio {(scored - decoded) / (decoded - start):.3f}")
    print("search:", json.dumps(attention_health([h.attention for h in found])))
    for layer, heads in health.get("layers", {}).items():
        for head, fields in heads.items():
            print(layer, head, " ".join(f"{k}={v:.3f}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
