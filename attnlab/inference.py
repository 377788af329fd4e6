"""Use a trained checkpoint from Python: translate or classify, read its attention, explore it.

    import attnlab
    tr = attnlab.load("outputs/.../checkpoints/best.pt")     # a Translator or a Classifier
    tr.translate(["Ich habe Hunger."])                        # ['I am hungry.']
    tr.translate(["Ich habe Hunger."], beam_size=5, n_best=3) # [[Translation(...), ...]]
    att = tr.attention("Ich habe Hunger.")                    # every layer and head, as numpy
    tr.explore("Ich habe Hunger.")                            # the explorer page, inline in Jupyter

    vit = attnlab.load("outputs/vision/.../best.pt")
    vit.predict(["digit.png"])                                # [Prediction(label='3', ...)]
    vit.attention("digit.png").weights                        # (layers, heads, T, T)

The checkpoint says its task and model; :func:`load` reads it with
:func:`attnlab.checkpoint.load_checkpoint` (safe: weights only) and rebuilds the model with the
task's own loader. Attention comes from the model's math path (what the pictures and the explorer
show): the translators' ``attention_weights`` teacher-forced on the chosen translation (the
Transformer's every layer and head, the RNN's alpha_t as one layer and head), the ViT's
``attention_weights``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from attnlab.checkpoint import load_checkpoint
from attnlab.config import DecodeConfig
from attnlab.errors import UserError

EOS_PIECE, BOS_PIECE = "</s>", "<s>"

ImageLike = Union[str, Path, "np.ndarray", Tensor, Any]  # a file, an array (H, W[, C]), a tensor (C, H, W), a PIL image


# ----------------------------------------------------------------------------- loading


def load(path: str | Path, device: str | torch.device = "cpu", image_size: Sequence[int] | None = None) -> "Translator | Classifier":
    """A trained model from ``path`` (a checkpoint file written by a training run).

    Returns a :class:`Translator` for a translation checkpoint, a :class:`Classifier` for a
    vision one. ``image_size`` ([H, W] or [S]; vision only): the size inputs are resized to
    (default: the training images' size, which keeps the attention matrices small).
    """
    path = Path(path).expanduser()
    payload = load_checkpoint(path)  # read once: its config says the task, its weights rebuild the model
    saved = OmegaConf.create(payload.get("config") or {})
    task = OmegaConf.select(saved, "task.name")
    device = torch.device(device)
    saved.checkpoint = str(path)
    if task == "translation":
        from attnlab.tasks.translation import load_for_inference

        cfg, model, toks = load_for_inference(saved, device, payload)
        return Translator(cfg, model, toks, device, path)
    if task == "vision":
        from attnlab.tasks.vision import load_model

        model, extra, cfg = load_model(saved, path, device, payload)
        return Classifier(cfg, model, extra, device, path, image_size)
    raise UserError(f"checkpoint {path} is for task '{task}', which attnlab.load does not know (translation, vision)")


class Loaded:
    """What both kinds of loaded model share: config, model, device, a label for pages."""

    task = ""

    def __init__(self, cfg: DictConfig, model: torch.nn.Module, device: torch.device, path: Path) -> None:
        self.cfg, self.model, self.device, self.path = cfg, model.eval(), device, Path(path)

    @property
    def label(self) -> str:
        """e.g. ``transformer, scaled_dot (run/checkpoints/best.pt)``."""
        where = "/".join(self.path.parts[-3:])
        return f"{self.cfg.model.name}, {self.cfg.attention.score} ({where})"

    def explore(self, inputs: Any, compare: "Loaded | str | Path | None" = None, **options: Any) -> "ExplorerView":
        """The explorer page for ``inputs`` (sentences or images), optionally beside a second
        model (``compare``: a loaded model or a checkpoint path). In Jupyter the returned object
        shows inline; ``.save(path)`` writes the self-contained HTML file."""
        from attnlab.explore.data import page_data
        from attnlab.explore.page import render_page

        others = [] if compare is None else [compare if isinstance(compare, Loaded) else load(compare, self.device)]
        items = [inputs] if isinstance(inputs, (str, Path)) or not isinstance(inputs, Sequence) else list(inputs)
        return ExplorerView(render_page(page_data([self, *others], items, **options)))


@dataclass
class ExplorerView:
    """A rendered explorer page: ``_repr_html_`` for Jupyter (an iframe whose ``srcdoc`` is the
    whole page, so its scripts run isolated from the notebook's), ``save(path)``, ``html``."""

    html: str

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.html, encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        import html as html_lib

        return (f'<iframe srcdoc="{html_lib.escape(self.html, quote=True)}" style="width:100%;height:760px;'
                'border:1px solid #ddd" sandbox="allow-scripts allow-downloads"></iframe>')


# ----------------------------------------------------------------------------- translation


@dataclass
class Translation:
    """One hypothesis of a search: its text, normalised score (beam) and log-probability."""

    text: str
    log_prob: float
    score: float | None = None

    def __str__(self) -> str:
        return self.text


@dataclass
class HypothesisAttention:
    """The attention of one output: ``tokens`` are the output subwords and ``</s>`` (T of them);
    ``cross`` (layers, heads, T, S); ``decoder`` (layers, heads, T, T) for the Transformer (row t
    is the step that predicts token t; its keys are ``<s>`` and the tokens before t)."""

    text: str
    tokens: list[str]
    log_prob: float
    score: float | None
    cross: np.ndarray
    decoder: np.ndarray | None = None


@dataclass
class TranslationAttention:
    """Every attention of a sentence's translations: ``source_tokens`` (S, ending in ``</s>``),
    ``encoder`` (layers, heads, S, S) self-attention (Transformer; None for the RNN), and the
    n-best hypotheses, best first."""

    source: str
    source_tokens: list[str]
    hypotheses: list[HypothesisAttention]
    encoder: np.ndarray | None = None

    @property
    def best(self) -> HypothesisAttention:
        return self.hypotheses[0]


class Translator(Loaded):
    """A translation checkpoint ready to use; see the module docstring."""

    task = "translation"

    def __init__(self, cfg: DictConfig, model: torch.nn.Module, toks: Any, device: torch.device, path: Path) -> None:
        super().__init__(cfg, model, device, path)
        self.toks = toks

    @property
    def max_source_tokens(self) -> int | None:
        """The longest source (subwords, eos included) the model can encode, if it has a limit."""
        limit = self.cfg.model.get("max_len")
        return int(limit) if limit and str(self.cfg.model.get("posenc", "")) == "learned" else None

    def _decode_cfg(self, beam_size: int | None) -> DecodeConfig:
        decode = DecodeConfig(**OmegaConf.to_container(self.cfg.decode))
        if beam_size is not None:
            if beam_size < 1:
                raise UserError(f"beam_size={beam_size} must be at least 1")
            decode.beam_size = int(beam_size)
        return decode

    def _source_ids(self, sentence: str) -> list[int]:
        if not isinstance(sentence, str):
            raise UserError(f"a sentence must be a string, got {type(sentence).__name__}")
        text = " ".join(sentence.split())
        if not text:
            raise UserError("the sentence is empty; type a sentence to translate")
        ids = self.toks.src.encode(text)
        limit = self.max_source_tokens
        if limit is not None and len(ids) + 1 > limit:
            raise UserError(f"the sentence has {len(ids) + 1} subwords; this model takes at most {limit}")
        return ids

    def search(self, sentence: str, beam_size: int | None = None, n_best: int = 1) -> tuple[list[int], list[Any]]:
        """Source ids and the ``n_best`` hypotheses (:class:`attnlab.decode.Hypothesis`) of one sentence."""
        from attnlab.data.batching import pad_batch
        from attnlab.decode import beam_search_n_best, greedy_search

        cfg = self._decode_cfg(beam_size)
        if not 1 <= n_best <= cfg.beam_size:
            raise UserError(f"n_best={n_best} must be between 1 and beam_size={cfg.beam_size}; raise beam_size")
        ids = self._source_ids(sentence)
        src, src_len = pad_batch([ids], self.model.pad_id, eos=self.model.eos_id)  # (1, S)
        src, src_len = src.to(self.device), src_len.to(self.device)
        if cfg.beam_size <= 1:
            return ids, greedy_search(self.model, src, src_len, cfg)
        return ids, beam_search_n_best(self.model, src, src_len, cfg, n_best)[0]

    def translate(
        self, sentences: str | Sequence[str], beam_size: int | None = None, n_best: int = 1
    ) -> Any:
        """Translations of ``sentences`` (a list, or one string): a list of strings, or with
        ``n_best`` > 1 a list of :class:`Translation` lists, best first. ``beam_size``: default
        the checkpoint's ``decode.beam_size``. One string in gives one result out."""
        single = isinstance(sentences, str)
        batch = [sentences] if single else list(sentences)
        self.model.eval()
        if n_best == 1:
            from attnlab.decode.translate import translate_sentences

            for s in batch:
                self._source_ids(s)  # clear errors for empty or too long input
            hyps = translate_sentences(self.model, self.toks, batch, self._decode_cfg(beam_size), self.device)
            out: list[Any] = [self.toks.tgt.decode(h.tokens) for h in hyps]
        else:
            out = [[Translation(self.toks.tgt.decode(h.tokens), h.log_prob, h.score) for h in self.search(s, beam_size, n_best)[1]]
                   for s in batch]
        return out[0] if single else out

    @torch.no_grad()
    def attention(self, sentence: str, beam_size: int | None = None, n_best: int = 1) -> TranslationAttention:
        """Every attention weight of the translation(s) of ``sentence``; see :class:`TranslationAttention`."""
        self.model.eval()
        ids, hyps = self.search(sentence, beam_size, n_best)
        src_tokens = [self.toks.src.id_to_piece(i) for i in ids] + [EOS_PIECE]
        src = torch.tensor([[*ids, self.model.eos_id]], device=self.device)  # (1, S)
        src_len = torch.tensor([src.shape[1]], device=self.device)
        encoder = None
        out = []
        for hyp in hyps:
            tgt_in = torch.tensor([[self.model.bos_id, *hyp.tokens]], device=self.device)  # (1, T): bos + output
            maps = teacher_forced_attention(self.model, src, src_len, tgt_in)
            if maps.get("encoder") is not None:
                encoder = maps["encoder"]
            out.append(HypothesisAttention(
                text=self.toks.tgt.decode(hyp.tokens),
                tokens=[self.toks.tgt.id_to_piece(i) for i in hyp.tokens] + [EOS_PIECE],
                log_prob=float(hyp.log_prob), score=hyp.score, cross=maps["cross"], decoder=maps.get("decoder"),
            ))
        return TranslationAttention(" ".join(sentence.split()), src_tokens, out, encoder)


def teacher_forced_attention(model: torch.nn.Module, src: Tensor, src_len: Tensor, tgt_in: Tensor) -> dict[str, np.ndarray]:
    """The attention of one (source, output) pair, as (layers, heads, rows, cols) arrays.

    src (1, S) ending in eos, tgt_in (1, T) = bos + output. A model with ``attention_weights``
    (the models' common protocol) gives what that returns: every layer and head of its cross-,
    encoder and decoder attention (the Transformer), or its one cross-attention as one layer and
    one head (the RNN); a model without it has its decoder stepped over ``tgt_in`` and each step's
    alpha_t (1, S) kept. Raises UserError for a model without attention.
    """
    if hasattr(model, "attention_weights"):
        maps = model.attention_weights(src, src_len, tgt_in)  # kind -> [(1, H, R, C)] per layer ((1, R, C): one head)
        if not maps.get("cross"):
            raise UserError("this model has no attention (attention=none): there are no weights to show")
        return {kind: torch.stack([w[0] if w.dim() == 4 else w[0].unsqueeze(0) for w in layers]).float().cpu().numpy()
                for kind, layers in maps.items() if layers}
    memory = model.encode(src, src_len)
    state = model.init_state(memory)
    rows = []
    for t in range(tgt_in.shape[1]):
        _, state, w = model.step(tgt_in[:, t], state, memory, need_weights=True)  # w: (1, S)
        if w is None:
            raise UserError("this model has no attention (attention=none): there are no weights to show")
        rows.append(w[0])
    cross = torch.stack(rows)[None, None]  # (T, S) -> (1 layer, 1 head, T, S)
    return {"cross": cross.float().cpu().numpy()}


# ----------------------------------------------------------------------------- vision


@dataclass
class Prediction:
    """A classified image: the top class, its probability, and the top-5 (label, probability)."""

    label: str
    probability: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class ImageAttention:
    """The attention of a ViT on one image.

    ``image`` (C, H, W) in [0, 1] as the model saw it; ``weights`` (layers, heads, T, T) with
    T = [1 +] N tokens (CLS first when ``has_cls``), the N patches in row-major order of the
    ``grid`` (rows, cols) of ``patch`` x ``patch`` pixels; ``rollout`` (N,) the attention rollout
    (Abnar & Zuidema 2020) of the image vector over the patches; ``top`` the top-5 classes.
    """

    image: np.ndarray
    weights: np.ndarray
    grid: tuple[int, int]
    patch: int
    has_cls: bool
    rollout: np.ndarray
    top: list[tuple[str, float]]


class Classifier(Loaded):
    """A vision checkpoint ready to use; see the module docstring."""

    task = "vision"

    def __init__(
        self, cfg: DictConfig, model: torch.nn.Module, extra: dict[str, Any], device: torch.device, path: Path,
        image_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__(cfg, model, device, path)
        self.classes = list(extra["classes"])
        self.channels = int(extra["channels"])
        size = list(image_size) if image_size else list(extra["image_size"])
        if len(size) not in (1, 2) or min(int(s) for s in size) <= 0:
            raise UserError(f"image_size={size} must be [S] or [H, W] with positive sizes")
        self.image_size = (int(size[0]), int(size[-1]))

    def image_tensor(self, image: ImageLike) -> Tensor:
        """Any image (file, PIL image, array (H, W[, C]), tensor (C, H, W) in [0, 1]) as the model's
        input: (channels, H, W) float in [0, 1], resized to ``image_size`` (bilinear, antialiased)."""
        from PIL import Image

        from attnlab.tasks.vision import read_image

        if isinstance(image, (str, Path)):
            path = Path(image).expanduser()
            if not path.is_file():
                raise UserError(f"image {image} does not exist")
            x = read_image(path, self.channels)
        elif isinstance(image, Image.Image):
            x = torch.from_numpy(np.asarray(image.convert("L" if self.channels == 1 else "RGB"), dtype=np.float32) / 255.0)
            x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)  # (H, W[, C]) -> (C, H, W)
        elif isinstance(image, np.ndarray) or isinstance(image, Tensor):
            x = torch.as_tensor(np.asarray(image) if isinstance(image, np.ndarray) else image).float()
            if isinstance(image, np.ndarray):
                if image.dtype == np.uint8:
                    x = x / 255.0
                x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)  # (H, W[, C]) -> (C, H, W)
            elif x.dim() == 2:
                x = x.unsqueeze(0)
        else:
            raise UserError(f"an image must be a file path, a PIL image, an array or a tensor, got {type(image).__name__}")
        if x.dim() != 3 or x.shape[0] not in (1, 3, 4):
            raise UserError(f"an image must be (C, H, W) or (H, W[, C]), got shape {tuple(x.shape)}")
        x = x[:3]
        if x.shape[0] != self.channels:  # grey <-> RGB, as read_image converts files
            x = x.mean(0, keepdim=True) if self.channels == 1 else x.expand(3, -1, -1)
        if tuple(x.shape[1:]) != self.image_size:
            x = F.interpolate(x[None], size=self.image_size, mode="bilinear", antialias=True, align_corners=False)[0]
        return x.clamp(0, 1).contiguous()

    @torch.no_grad()
    def _probs(self, images: Tensor) -> Tensor:
        return self.model(images.to(self.device)).float().softmax(-1).cpu()  # (B, classes)

    def _top(self, probs: Tensor, k: int = 5) -> list[tuple[str, float]]:
        p, i = probs.topk(min(k, len(self.classes)))
        return [(self.classes[int(j)], float(q)) for q, j in zip(p, i)]

    def predict(self, images: ImageLike | Sequence[ImageLike]) -> Any:
        """:class:`Prediction` of each image (one image in gives one prediction out)."""
        single = not isinstance(images, (list, tuple))
        batch = torch.stack([self.image_tensor(im) for im in ([images] if single else images)])  # (B, C, H, W)
        self.model.eval()
        out = []
        for probs in self._probs(batch):
            top = self._top(probs)
            out.append(Prediction(top[0][0], top[0][1], top))
        return out[0] if single else out

    @torch.no_grad()
    def attention(self, image: ImageLike) -> ImageAttention:
        """Every layer's and head's attention on one image; see :class:`ImageAttention`."""
        from attnlab.viz.rollout import patch_relevance, rollout

        self.model.eval()
        x = self.image_tensor(image)[None].to(self.device)  # (1, C, H, W)
        weights = self.model.attention_weights(x)  # [(1, heads, T, T)] per layer
        layout = self.model.layout(x)
        rolled = patch_relevance(rollout(weights), self.model.has_cls, layout.real)[0]  # (N,)
        return ImageAttention(
            image=x[0].cpu().numpy(),
            weights=torch.stack([w[0] for w in weights]).float().cpu().numpy(),  # (L, H, T, T)
            grid=(int(layout.grid[0]), int(layout.grid[1])),
            patch=int(self.model.patch_size),
            has_cls=bool(self.model.has_cls),
            rollout=rolled.float().cpu().numpy(),
            top=self._top(self._probs(x)[0]),
        )
