"""Typed configuration schema (Hydra structured configs).

Each dataclass below is the schema of one config group; the YAML files in ``conf/`` extend these
schemas, so Hydra rejects unknown keys, wrong types and bad enum values when it composes the
config, before any work starts. ``register_configs()`` puts the schemas in Hydra's ConfigStore
under ``base_*`` names that the YAML files name in their ``defaults`` lists.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


class Choice(str, Enum):
    """A string enum that prints as its value (``mode=train``, not ``Mode.train``)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Mode(Choice):
    train = "train"
    evaluate = "evaluate"
    translate = "translate"
    predict = "predict"
    export = "export"  # checkpoint=PATH -> a folder of safetensors weights, config, tokenizer
    explore = "explore"  # write an interactive attention page (explore.html) for input=...
    serve = "serve"  # the same page served locally: type a sentence or upload an image


class Device(Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"  # Apple GPUs


class Schedule(Choice):
    constant = "constant"
    cosine = "cosine"
    linear = "linear"
    inverse_sqrt = "inverse_sqrt"


class Precision(Choice):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Logger(Choice):
    none = "none"  # metrics.jsonl only (always written: it is the record)
    tensorboard = "tensorboard"  # also TensorBoard event files in <run dir>/tensorboard


class Cell(Choice):
    gru = "gru"
    lstm = "lstm"


class InputFeeding(Choice):
    """What the RNN decoder's first layer reads besides x'_t (see attnlab.models.rnn_attn)."""

    seed = "seed"  # [o_{t-1}; x'_t; c_{t-1}]: the seed text's RNN(o_{t-1}, x'_t, c_{t-1})
    context = "context"  # [x'_t; c_{t-1}]
    attentional = "attentional"  # [x'_t; h~_{t-1}]: Luong et al. 2015, sec. 3.3


class NormPosition(Choice):
    pre = "pre"
    post = "post"


class Pool(Choice):
    cls = "cls"
    mean = "mean"


# ----------------------------------------------------------------------------- groups


@dataclass
class TaskConfig:
    name: str = MISSING  # translation | vision
    models: list[str] = field(default_factory=list)  # the models this task accepts
    data: list[str] = field(default_factory=list)  # the datasets this task accepts


@dataclass
class AttentionConfig:
    """The attention spec: handed whole from each model's ``build()`` to its attention modules and
    read by one factory (:mod:`attnlab.attention.factory`), which also checks it against the
    registries (names are not repeated here, so a new variant needs no schema edit)."""

    score: str = "scaled_dot"  # a name of attnlab.attention.scores.SCORES, or none (rnn_attn only)
    position: str = "none"  # attention-side positions (POSITIONS): none | rope | alibi | relative
    window: int = 0  # 0 = global; w > 0 = keys within distance w (rnn_attn: Luong's D)
    local: str = "none"  # rnn_attn only: none | monotonic (local-m) | predictive (local-p), Luong 2015
    kv_heads: int = 0  # 0 = one key/value head per query head (MHA); 1 = MQA; a divisor = GQA
    backend: str = "auto"  # auto | math | sdpa | flex
    additive_dim: int = 0  # hidden size of the additive (Bahdanau) score; 0 = the key size
    fused: bool = True  # false = backend math (the readable path) whatever backend says
    rel_buckets: int = 32  # position=relative, text: T5 log-buckets (Raffel et al. 2020)
    rel_max_distance: int = 128  # position=relative, text: offsets past this share the last bucket
    rel_grid_radius: int = 7  # position=relative, ViT: (dy, dx) clipped to +-radius
    rope_base: float = 10000.0  # position=rope: theta_i = base^(-2i/d) (Su et al. 2021)


@dataclass
class TextDataConfig:
    name: str = "tatoeba_deen"
    src_lang: str = "de"
    tgt_lang: str = "en"
    path: Optional[str] = None  # `files`: folder with train/valid/test.<lang>[.gz]
    cache_dir: Optional[str] = None  # downloads (default: $ATTNLAB_CACHE or ~/.cache/attnlab)
    test_split: str = "test"  # multi30k: test_2016_flickr, test_2017_flickr, ...
    max_train_pairs: int = 0  # 0 = all; a positive number keeps the first N (quick runs, tests)
    max_eval_sentences: int = 0  # 0 = all; caps valid and test sources (quick runs, tests)
    vocab_size: int = 8000
    shared_vocab: bool = True  # one sentencepiece model for both languages
    tokenizer_type: str = "unigram"  # sentencepiece model type: unigram | bpe
    max_train_tokens: int = 0  # drop training pairs longer than this many subwords; 0 = keep all


@dataclass
class SyntheticDataConfig(TextDataConfig):
    """The attention gym's sequence tasks (attnlab.data.synthetic): symbols, gold alignments."""

    name: str = "synthetic"
    src_lang: str = "in"
    tgt_lang: str = "out"
    kind: str = "reverse"  # copy | reverse | sort | shift | recall | count
    train_len: list[int] = field(default_factory=lambda: [4, 20])  # [min, max], inclusive (recall: pairs)
    test_lengths: list[int] = field(default_factory=lambda: [5, 10, 15, 20, 30, 40])
    num_symbols: int = 20  # alphabet size (letters; at most 52)
    shift: int = 2  # kind=shift: rotate by this many positions
    train_size: int = 20000  # training examples
    valid_size: int = 200  # validation examples (training lengths; for choosing)
    test_size: int = 100  # test examples per test length
    seed: int = 0  # the data's own seed (the same data for every run seed)
    tokenizer_type: str = "symbols"  # one id per symbol (attnlab.data.symbols)


@dataclass
class AugmentConfig:
    shift: int = 0  # random translation by up to this many pixels (zero fill)
    hflip: bool = False  # random horizontal flips (not for digits)
    rotate: float = 0.0  # random rotation by up to this many degrees (bilinear, zero fill)
    scale: float = 0.0  # random zoom by a factor in [1 - scale, 1 + scale] (bilinear, zero fill)


@dataclass
class ImageDataConfig:
    name: str = "digits"
    path: Optional[str] = None  # image_folder: DIR with train/<class>/* and test/<class>/*
    cache_dir: Optional[str] = None
    subset: str = "standard"  # mnist: standard (60k/10k) | test_split (8k/2k of the 10k test set)
    valid_fraction: float = 0.1
    # k-fold cross-validation for choosing on small data: > 1 pools train and valid, splits them
    # into cv_folds stratified folds and validates on fold cv_fold (valid_fraction then unused)
    cv_folds: int = 0
    cv_fold: int = 0
    max_train: int = 0  # 0 = all
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class PlacedDigitsConfig(ImageDataConfig):
    """The attention gym's images (attnlab.data.placed_digits): 8x8 digits placed on a canvas, box known."""

    name: str = "placed_digits"
    canvas: int = 32  # canvas height and width, pixels
    clutter: int = 8  # fragments of other digits pasted around the digit
    fragment: int = 5  # their height and width, pixels (8 x 5x5: the brightest patch is rarely the digit's)
    copies: int = 4  # placements of each training digit
    grid: int = 4  # the digit's corner at multiples of this many pixels (4 = the recipe's patch grid; 1 = anywhere)
    seed: int = 0  # the data's own seed


@dataclass
class RNNAttnConfig:
    name: str = "rnn_attn"
    cell: Cell = Cell.gru
    emb_dim: int = 256
    hidden_dim: int = 512
    enc_layers: int = 1
    dec_layers: int = 1
    bidirectional: bool = True
    attn_dim: int = 256  # size of the projected keys W_K h_i and queries W_Q s_t
    dropout: float = 0.2
    tie_embeddings: bool = True  # output projection shares the target embedding
    input_feeding: InputFeeding = InputFeeding.seed  # what the decoder reads besides x'_t
    # Normalise q_t and k_i to unit length before scoring and scale the queries by a learned
    # g (init qk_scale; Henry et al. 2020 "query-key normalisation"); 0 = off (the plain scores
    # saturate within 50 updates and attention collapses onto the source </s>). scaled_dot divides
    # by sqrt(attn_dim) again: use 160 with it (docs/benchmarks.md).
    qk_scale: float = 10.0


@dataclass
class TransformerConfig:
    name: str = "transformer"
    d_model: int = 256
    heads: int = 4
    enc_layers: int = 3
    dec_layers: int = 3
    d_ff: int = 1024
    dropout: float = 0.1
    norm: NormPosition = NormPosition.pre
    posenc: str = "sinusoidal"  # none | sinusoidal | learned (attnlab.layers.positional)
    max_len: int = 512  # longest sequence a learned positional table covers
    attn_dropout: float = 0.0  # dropout on the attention weights
    share_embeddings: bool = True  # one embedding table for both languages (needs data.shared_vocab)
    tie_output: bool = True  # the output projection is the target embedding matrix


@dataclass
class ViTConfig:
    name: str = "vit"
    patch_size: int = 2
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0
    stem_layers: int = 0  # 3x3 convolutions before the patch embedding (Xiao et al. 2021); 0 = linear patches
    stem_channels: int = 32  # their width
    dropout: float = 0.0
    drop_path: float = 0.0
    posenc: str = "sincos2d"
    pool: Pool = Pool.cls
    # mode=evaluate/predict: resize the images to [H, W] (or [S] = S x S) first; learned positions
    # are resampled to the new grid. None = the images' own sizes.
    eval_size: Optional[list[int]] = None


@dataclass
class TrainerConfig:
    epochs: int = 10
    max_steps: int = 0  # optimizer steps; 0 = epochs decide. The schedule spans min(steps, epochs)
    max_minutes: float = 0.0  # safety cap on training time: stops the run, never shapes the schedule; 0 = none
    batch_size: int = 64  # images, or sentences when max_tokens = 0
    max_tokens: int = 0  # translation: token budget per batch (length-bucketed); 0 = batch_size
    lr: float = 1e-3
    weight_decay: float = 0.01
    schedule: Schedule = Schedule.cosine
    warmup_steps: int = 0
    clip_norm: float = 1.0
    label_smoothing: float = 0.0
    patience: int = 0  # stop after this many validations without improvement; 0 = never
    checkpoint_every_steps: int = 500  # periodic checkpoints/last.pt inside an epoch
    log_every_steps: int = 50
    progress: bool = True  # progress bar on stderr
    num_threads: int = 0  # torch.set_num_threads; 0 = torch's default
    precision: Precision = Precision.fp32  # bf16 = bfloat16 autocast (GPU); fp16 = float16 autocast + loss scaling (CUDA)
    accum_steps: int = 1  # batches whose gradients are summed into one optimizer step (a batch accum_steps x larger)
    validate_every_steps: int = 0  # validate every N optimizer steps too (curves within an epoch); 0 = each epoch
    average_last: int = 0  # keep the weights of the last N validations; test with their average (averaged.pt)
    compile: bool = False  # torch.compile the training computation (start-up cost: see docs/benchmarks.md)


@dataclass
class DecodeConfig:
    beam_size: int = 1
    length_penalty: float = 1.0
    max_len_a: float = 1.5  # max output length = a * source length + b (subwords)
    max_len_b: int = 10
    batch_size: int = 128
    valid_sentences: int = 500  # validation BLEU (greedy) on the first N valid sources; 0 = all
    sampling: bool = False  # draw translations from the model instead of searching (temperature, top_k, top_p)
    temperature: float = 1.0  # sampling: < 1 sharpens the distribution, > 1 flattens it
    top_k: int = 0  # sampling: only the k most probable tokens; 0 = all
    top_p: float = 1.0  # sampling: only the most probable tokens that make up this much probability (nucleus)
    sample_seed: int = 0  # sampling: same seed, same inputs and batch size -> same samples
    n_best: int = 1  # mode=translate: this many translations per input (samples, or the beam's best)


@dataclass
class VizConfig:
    enabled: bool = True
    num_examples: int = 4
    layer_grids: int = 1  # of those examples, how many also get every layer and head drawn (Transformer)


@dataclass
class ExploreConfig:
    n_best: int = 3  # translation: hypotheses shown per sentence (at most decode.beam_size)
    max_inputs: int = 50  # sentences or images per page (keeps the page small)
    image_size: Optional[list[int]] = None  # vision: resize inputs to [H, W] ([S]); None = the training size
    decimals: int = 4  # attention weights are rounded to this many decimals in the page


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # loopback only by default: the page runs a model for anyone who reaches it
    port: int = 8000
    max_upload_mb: float = 5.0  # larger uploads are refused with 413
    max_tokens: int = 256  # longest source sentence (subwords); the model's own max_len caps it too


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: Any = MISSING
    data: Any = MISSING
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    viz: VizConfig = field(default_factory=VizConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    seed: int = 0
    device: Device = Device.auto
    mode: Mode = Mode.train
    logger: Logger = Logger.none  # tensorboard: live curves and attention images (pip install "attnlab[tensorboard]")
    resume: bool = False
    checkpoint: Optional[str] = None  # checkpoint modes: a .pt file, or a folder of mode=export
    input: Optional[str] = None  # translate: a text file (default stdin); predict: image or dir; explore: sentence, file, image or dir
    output: Optional[str] = None  # mode=translate: write translations here (default stdout)
    compare: Optional[str] = None  # mode=explore/serve: a second checkpoint shown beside the first


def run_dirname(overrides: str, limit: int = 120) -> str:
    """A sweep job's folder name: its overrides (``attention=dot,seed=0``), shortened with a hash
    when too long for a file name (file systems stop at 255 bytes)."""
    if len(overrides) <= limit:
        return overrides or "defaults"
    digest = hashlib.sha1(overrides.encode()).hexdigest()[:10]
    return f"{overrides[: limit - 12]}..{digest}"


def register_configs() -> None:
    OmegaConf.register_new_resolver("attnlab_dirname", run_dirname, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="task", name="base_task", node=TaskConfig)
    cs.store(group="attention", name="base_attention", node=AttentionConfig)
    cs.store(group="data", name="base_text", node=TextDataConfig)
    cs.store(group="data", name="base_images", node=ImageDataConfig)
    cs.store(group="data", name="base_synthetic", node=SyntheticDataConfig)
    cs.store(group="data", name="base_placed_digits", node=PlacedDigitsConfig)
    cs.store(group="model", name="base_rnn_attn", node=RNNAttnConfig)
    cs.store(group="model", name="base_transformer", node=TransformerConfig)
    cs.store(group="model", name="base_vit", node=ViTConfig)
