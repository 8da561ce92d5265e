"""Text for language models: a corpus tokenized once into a memory-mapped token file.

Sources: one text file, a folder of text files (every regular, non-hidden file under it, in
name order), a `.jsonl` file with a text field, or a Parquet file with a text column
(`data.text_field`). Documents are joined by the tokenizer's end-of-text token, or a blank
line for the byte tokenizer. Text must be UTF-8.

The split: the last `val_fraction` of the corpus's bytes is the validation text (a fixed
held-out tail, cut at a character boundary), tokenized apart from the training text, so no
window straddles both and a BPE tokenizer never sees the tail.

Tokenizers (`data.tokenizer`): `byte` (the 256 byte values, today's), `bpe` (Hugging Face
`tokenizers`' byte-level BPE, trained on the training text, `data.vocab_size` entries), or the
path of a `tokenizer.json`. Token ids are stored as uint8 for bytes, uint16 up to a 65,536
vocabulary and uint32 beyond, so a corpus costs 1–4 bytes per token on disk and nothing in
RAM beyond the pages a batch touches.

The cache: token files (and trained BPE tokenizers) live in the user cache folder
(`$TRAINBENCH_CACHE`, else the platform's, e.g. `~/.cache/trainbench/tokens/`), named by the
corpus's content hash (BLAKE2b of its files, remembered per file size and mtime so it is not
recomputed every run), the tokenizer's hash and the split. A single text file with the byte
tokenizer needs no token file: the file itself is memory-mapped. Building takes a lock, so the
processes of a DDP run tokenize once; a progress bar (stderr) shows the bytes done.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.dataset import DataInfo, require
from engine.errors import DataError
from engine.fields import shorten
from engine.jsonfile import regular_file

BYTE_VOCAB = 256
SEP = b"\n\n"  # between two documents, for the byte tokenizer (others put their end-of-text token)
EOT = "<|endoftext|>"
CHUNK = 1 << 20  # bytes of text encoded per piece
CHECK_LIMIT = 64 << 20  # validate reads this much of a corpus at most (encoding, text lengths)
BPE_SAMPLE = 256 << 20  # training text a BPE tokenizer learns from, spread over the split
RESIDENT_TOKENS = 16 << 20  # corpora up to this many tokens are held on the device


def cache_dir() -> Path:
    env = os.environ.get("TRAINBENCH_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("trainbench"))


# ------------------------------------------------------------------ the corpus


@dataclass
class Corpus:
    """A text source: its documents' files, and how to read their text."""

    path: Path
    kind: str  # file | folder | jsonl | parquet
    files: list[Path]
    text_field: str

    @property
    def label(self) -> str:
        return self.path.name

    def stat_key(self) -> str:
        parts = [self.kind, self.text_field]
        for f in self.files:
            st = f.stat()
            parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
        return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()

    def raw_size(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    def documents(self, limit: int | None = None) -> Iterator[bytes]:
        """Each document's UTF-8 bytes, checked; `limit` stops after about that many bytes."""
        seen = 0
        for f in self.files:
            if self.kind in ("file", "folder"):
                for piece in _read_pieces(f, limit - seen if limit else None):
                    seen += len(piece)
                    yield piece
                yield b""  # the end of a document
            elif self.kind == "jsonl":
                for text in _jsonl_texts(f, self.text_field):
                    seen += len(text)
                    yield text
                    yield b""
                    if limit and seen >= limit:
                        return
            else:
                texts = (
                    _arrow_texts(f, self.text_field)
                    if self.kind == "hf"
                    else _parquet_texts(f, self.text_field)
                )
                for text in texts:
                    seen += len(text)
                    yield text
                    yield b""
                    if limit and seen >= limit:
                        return
            if limit and seen >= limit:
                return


def corpus(data: dict) -> Corpus:
    """The corpus `data.path` names, its files checked (existence, kind, not empty)."""
    p = Path(data["path"])
    field = data.get("text_field") or "text"
    try:
        is_dir = p.is_dir()
    except OSError as err:
        raise DataError(f"{p}: cannot read the text source ({err.strerror or err})") from None
    if is_dir and ((p / "dataset_dict.json").is_file() or (p / "state.json").is_file()):
        files = sorted(f for f in p.rglob("*.arrow") if f.is_file())
        if not files:
            raise DataError(f"{p}: the datasets folder holds no Arrow files")
        return Corpus(p, "hf", files, field)
    if is_dir:
        try:
            files = sorted(
                f
                for f in p.rglob("*")
                if not any(part.startswith(".") for part in f.relative_to(p).parts) and f.is_file()
            )
        except OSError as err:
            raise DataError(f"{p}: cannot read the folder ({err.strerror or err})") from None
        if not files:
            raise DataError(f"{p}: the folder holds no text files")
        for f in files:
            regular_file(f, "text file")
        kind = "folder"
    else:
        regular_file(p, "text file")
        kind = {".jsonl": "jsonl", ".parquet": "parquet"}.get(p.suffix.lower(), "file")
        files = [p]
    c = Corpus(p, kind, files, field)
    if c.raw_size() == 0:
        raise DataError(f"{p}: the {'folder holds only empty files' if is_dir else 'file is empty'}")
    return c


def _read_pieces(f: Path, limit: int | None) -> Iterator[bytes]:
    """A file's bytes in pieces cut after a newline (or whitespace), checked as UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    done, carry = 0, b""
    try:
        with open(f, "rb") as fh:
            while True:
                block = fh.read(CHUNK)
                final = len(block) < CHUNK
                try:
                    decoder.decode(block, final=final)
                except UnicodeDecodeError as err:
                    raise DataError(
                        f"{f}: not UTF-8 text ({err.reason} at byte {done + err.start:,}); a text data set "
                        "must be UTF-8"
                    ) from None
                done += len(block)
                data = carry + block
                if final:
                    if data:
                        yield data
                    return
                cut = data.rfind(b"\n") + 1 or data.rfind(b" ") + 1 or len(data)
                carry = data[cut:]
                yield data[:cut]
                if limit is not None and done >= limit:
                    return
    except OSError as err:
        raise DataError(f"{f}: cannot read the text file ({err.strerror or err})") from None


def _jsonl_texts(f: Path, field: str) -> Iterator[bytes]:
    try:
        with open(f, "rb") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError) as err:
                    raise DataError(f"{f}: line {line_no} is not JSON ({shorten(str(err), 120)})") from None
                if not isinstance(row, dict) or field not in row:
                    keys = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
                    raise DataError(
                        f"{f}: line {line_no} has no field {field!r} (it has: {shorten(keys, 120)}); set "
                        "data.text_field"
                    )
                text = row[field]
                if not isinstance(text, str):
                    raise DataError(f"{f}: line {line_no}: {field!r} is not text ({type(text).__name__})")
                yield text.encode("utf-8", "replace")
    except OSError as err:
        raise DataError(f"{f}: cannot read the JSON lines file ({err.strerror or err})") from None


def _parquet_texts(f: Path, field: str) -> Iterator[bytes]:
    pa = require("pyarrow", "Parquet and Arrow files")
    pq = require("pyarrow.parquet", "Parquet and Arrow files")

    try:
        pf = pq.ParquetFile(f)
    except Exception as err:  # noqa: BLE001 - pyarrow's ArrowInvalid and friends
        raise DataError(f"{f}: not a readable Parquet file ({shorten(str(err), 160)})") from None
    names = pf.schema_arrow.names
    if field not in names:
        raise DataError(
            f"{f}: no column {field!r} (columns: {shorten(', '.join(names), 160)}); set data.text_field"
        )
    if not pa.types.is_string(pf.schema_arrow.field(field).type) and not pa.types.is_large_string(
        pf.schema_arrow.field(field).type
    ):
        raise DataError(f"{f}: column {field!r} is {pf.schema_arrow.field(field).type}, not text")
    for batch in pf.iter_batches(columns=[field], batch_size=4096):
        for text in batch.column(0).to_pylist():
            if text:
                yield text.encode("utf-8")


def _arrow_texts(f: Path, field: str) -> Iterator[bytes]:
    """The text column of one Arrow file of a `datasets` folder (stream format, memory-mapped)."""
    pa = require("pyarrow", "Parquet and Arrow files")

    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(f)))
    except Exception as err:  # noqa: BLE001 - pyarrow's errors
        raise DataError(f"{f}: not a readable Arrow file ({shorten(str(err), 120)})") from None
    if field not in reader.schema.names:
        raise DataError(
            f"{f}: no column {field!r} (columns: {shorten(', '.join(reader.schema.names), 160)}); set data.text_field"
        )
    for batch in reader:
        for text in batch.column(field).to_pylist():
            if text:
                yield str(text).encode("utf-8", "replace")


def text_bytes(c: Corpus, limit: int | None = None) -> tuple[int, bool]:
    """(bytes of the corpus's stream, exact): read in full up to `limit`, else estimated from
    the files' sizes. Reading checks the encoding and the JSON/Parquet structure."""
    if c.kind in ("file", "folder"):
        sizes = [f.stat().st_size for f in c.files]
        filled = sum(1 for n in sizes if n)
        for _ in c.documents(limit=limit):  # the encoding of what is read
            pass
        return sum(sizes) + len(SEP) * max(0, filled - 1), True
    total, finished = 0, True
    for piece in _stream(c):
        total += len(SEP) if piece is None else len(piece)
        if limit is not None and total >= limit:
            finished = False
            break
    return (total if finished else max(total, c.raw_size() // 2)), finished


# ------------------------------------------------------------------ tokenizers


class ByteTokenizer:
    vocab_size = BYTE_VOCAB
    kind = "byte"
    eot = None

    def encode(self, pieces: list[bytes]) -> list[np.ndarray]:
        return [np.frombuffer(p, dtype=np.uint8) for p in pieces]

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", "replace")

    def to_json(self) -> str:
        return json.dumps({"type": "byte", "vocab_size": BYTE_VOCAB})


class HFTokenizer:
    """A Hugging Face `tokenizers.Tokenizer` (trained BPE or a tokenizer.json)."""

    def __init__(self, tok, kind: str, vocab_size: int | None = None):
        self.tok, self.kind = tok, kind
        self.vocab_size = max(vocab_size or 0, tok.get_vocab_size(with_added_tokens=True))
        self.eot = tok.token_to_id(EOT)

    def encode(self, pieces: list[bytes]) -> list[np.ndarray]:
        texts = [p.decode("utf-8", "replace") for p in pieces]
        return [
            np.asarray(e.ids, dtype=np.int64) for e in self.tok.encode_batch(texts, add_special_tokens=False)
        ]

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def to_json(self) -> str:
        return self.tok.to_str()


def load_tokenizer_file(path: str):
    Tokenizer = require("tokenizers", "the bpe tokenizer and tokenizer.json files").Tokenizer

    p = regular_file(path, "tokenizer file")
    try:
        return HFTokenizer(Tokenizer.from_file(str(p)), "file")
    except Exception as err:  # noqa: BLE001 - tokenizers raises Exception with serde's message
        raise DataError(
            f"{p}: not a tokenizer.json that Hugging Face tokenizers reads ({shorten(str(err), 160)})"
        ) from None


def tokenizer_vocab(data: dict) -> int:
    """The vocabulary (the LM head's width) without training or tokenizing anything."""
    name = data.get("tokenizer") or "byte"
    if name == "byte":
        return BYTE_VOCAB
    if name == "bpe":
        return data["vocab_size"]
    return load_tokenizer_file(name).vocab_size


def _train_bpe(c: Corpus, split_at: int, vocab_size: int):
    tk = require("tokenizers", "the bpe tokenizer and tokenizer.json files")
    Tokenizer, decoders, models = tk.Tokenizer, tk.decoders, tk.models
    pre_tokenizers, trainers = tk.pre_tokenizers, tk.trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Up to BPE_SAMPLE bytes of training text, taken as evenly spaced stretches of it.
    share = min(1.0, BPE_SAMPLE / max(split_at, 1))

    def texts():
        seen = kept = 0
        for piece in _doc_pieces(c, 0, split_at, SEP):
            seen += len(piece)
            if kept <= share * seen:
                kept += len(piece)
                yield piece.decode("utf-8", "replace")

    tok.train_from_iterator(texts(), trainer=trainer)
    return HFTokenizer(tok, "bpe", vocab_size)


# ------------------------------------------------------------------ token files


def _dtype(vocab: int):
    return np.uint8 if vocab <= 256 else np.uint16 if vocab <= 65536 else np.uint32


def _split_point(c: Corpus, total: int, val_fraction: float, char_boundary: bool) -> int:
    at = total - int(total * val_fraction)
    if not char_boundary:
        return at
    # Move back to the start of a UTF-8 character (continuation bytes are 10xxxxxx).
    back = b"".join(p for p in _doc_pieces(c, max(0, at - 4), at, SEP) if p)
    while back and at > 0 and (back[-1] & 0xC0) == 0x80:
        back, at = back[:-1], at - 1
    if back and back[-1] >= 0xC0:
        at -= 1
    return at


@contextmanager
def _locked(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _content_hash(c: Corpus) -> str:
    """BLAKE2b of the corpus's files, remembered by their sizes and mtimes."""
    index_path = cache_dir() / "tokens" / "hashes.json"
    key = c.stat_key()
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{c.kind}:{c.text_field}".encode())
    for f in c.files:
        with open(f, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(CHUNK * 8), b""):
                h.update(block)
    digest = h.hexdigest()
    index[key] = digest
    index_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = index_path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(index))
    os.replace(tmp, index_path)
    return digest


@dataclass
class TokenFile:
    tokens: np.ndarray  # memory-mapped ids
    train_tokens: int
    tokenizer: object
    path: Path


def _bpe_path(digest: str, vocab_size: int, split_at: int) -> Path:
    return cache_dir() / "tokens" / f"bpe-{digest}-{vocab_size}-{split_at}.json"


def _token_path(c: Corpus, digest: str, tokenizer, split_at: int) -> Path:
    tok_hash = hashlib.blake2b(tokenizer.to_json().encode(), digest_size=8).hexdigest()
    return cache_dir() / "tokens" / f"{c.path.stem}-{digest}-{tok_hash}-{split_at}.tokens"


def build_tokens(data: dict, log=None) -> TokenFile:
    """The corpus as a token file (built once and cached; see the module docstring)."""
    c = corpus(data)
    name = data.get("tokenizer") or "byte"
    log = log or (lambda msg: None)
    if name == "byte" and c.kind == "file":
        total = c.raw_size()
        for _ in c.documents():  # the encoding, checked as a run always has
            pass
        tokens = np.memmap(c.files[0], dtype=np.uint8, mode="r")
        return TokenFile(
            tokens, _split_point(c, total, data["val_fraction"], False), ByteTokenizer(), c.files[0]
        )
    total, _ = text_bytes(c)
    split_at = _split_point(c, total, data["val_fraction"], name != "byte")
    digest = _content_hash(c)
    if name == "byte":
        tokenizer = ByteTokenizer()
    elif name == "bpe":
        tok_path = _bpe_path(digest, data["vocab_size"], split_at)
        with _locked(tok_path):
            if tok_path.exists():
                tokenizer = HFTokenizer(_tokenizer_from(tok_path), "bpe", data["vocab_size"])
            else:
                log(f"training a {data['vocab_size']:,}-token BPE tokenizer on {c.label}'s training text")
                tokenizer = _train_bpe(c, split_at, data["vocab_size"])
                tokenizer.tok.save(str(tok_path.with_suffix(".tmp")))
                os.replace(tok_path.with_suffix(".tmp"), tok_path)
    else:
        tokenizer = load_tokenizer_file(name)
    out = _token_path(c, digest, tokenizer, split_at)
    with _locked(out):
        meta_path = out.with_suffix(".json")
        if not (out.exists() and meta_path.exists()):
            _write_tokens(c, tokenizer, split_at, total, out, log)
        meta = json.loads(meta_path.read_text())
    tokens = np.memmap(out, dtype=np.dtype(meta["dtype"]), mode="r", shape=(meta["tokens"],))
    return TokenFile(tokens, meta["train_tokens"], tokenizer, out)


def _cached(data: dict, c: Corpus, total: int):
    """(token file, its meta, tokenizer) of a corpus already in the cache, found without hashing
    a large corpus anew or training anything; None when it is not there."""
    name = data.get("tokenizer") or "byte"
    index_path = cache_dir() / "tokens" / "hashes.json"
    try:
        digest = json.loads(index_path.read_text()).get(c.stat_key())
    except (OSError, ValueError):
        digest = None
    if digest is None and c.raw_size() <= CHECK_LIMIT:
        digest = _content_hash(c)
    if digest is None:
        return None
    split_at = _split_point(c, total, data["val_fraction"], name != "byte")
    if name == "bpe":
        tok_path = _bpe_path(digest, data["vocab_size"], split_at)
        if not tok_path.exists():
            return None
        tokenizer = HFTokenizer(_tokenizer_from(tok_path), "bpe", data["vocab_size"])
    else:
        tokenizer = ByteTokenizer() if name == "byte" else load_tokenizer_file(name)
    path = _token_path(c, digest, tokenizer, split_at)
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return path, meta, tokenizer


def cached_counts(data: dict, c: Corpus, total: int) -> tuple[int, int] | None:
    """(train, validation) token counts of a corpus already in the cache (else None)."""
    found = _cached(data, c, total)
    if found is None:
        return None
    meta = found[1]
    return meta["train_tokens"], meta["tokens"] - meta["train_tokens"]


def cached_file(data: dict, c: Corpus) -> tuple[np.ndarray, object] | None:
    """(token ids, tokenizer) of a corpus that needs no tokenizing now: a single file with the
    byte tokenizer is its own token file; others once the cache holds them (else None)."""
    if (data.get("tokenizer") or "byte") == "byte" and c.kind == "file":
        return np.memmap(c.files[0], dtype=np.uint8, mode="r"), ByteTokenizer()
    found = _cached(data, c, text_bytes(c, CHECK_LIMIT)[0])
    if found is None:
        return None
    path, meta, tokenizer = found
    return np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r", shape=(meta["tokens"],)), tokenizer


def first_bytes(c: Corpus, n: int) -> Iterator[bytes | None]:
    """The start of the corpus's stream (None between documents), about `n` bytes."""
    seen = 0
    for piece in _stream(c):
        yield piece
        seen += len(piece) if piece else len(SEP)
        if seen >= n:
            return


def _tokenizer_from(path: Path):
    Tokenizer = require("tokenizers", "the bpe tokenizer and tokenizer.json files").Tokenizer

    return Tokenizer.from_file(str(path))


def _write_tokens(c: Corpus, tokenizer, split_at: int, total: int, out: Path, log) -> None:
    from tqdm import tqdm

    dtype = _dtype(tokenizer.vocab_size)
    eot = getattr(tokenizer, "eot", None)
    log(f"tokenizing {c.label} ({total:,} bytes) into {out}")
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    counts = []
    bar = tqdm(
        total=total, unit="B", unit_scale=True, desc="tokenizing", file=sys.stderr, leave=False, disable=None
    )
    with open(tmp, "wb") as fh, bar:
        for start, end in ((0, split_at), (split_at, total)):
            n, batch = 0, []
            for piece in _doc_pieces(c, start, end, SEP if eot is None else None):
                if piece is None:  # a document boundary: the end-of-text token
                    n += _encode_into(fh, tokenizer, batch, dtype, bar)
                    fh.write(np.asarray([eot], dtype=dtype).tobytes())
                    n += 1
                    continue
                batch.append(piece)
                if len(batch) >= 16:  # encode_batch spreads a batch over the cores
                    n += _encode_into(fh, tokenizer, batch, dtype, bar)
            n += _encode_into(fh, tokenizer, batch, dtype, bar)
            counts.append(n)
    os.replace(tmp, out)
    meta = {
        "tokens": sum(counts),
        "train_tokens": counts[0],
        "dtype": np.dtype(dtype).name,
        "vocab_size": tokenizer.vocab_size,
        "bytes": total,
    }
    out.with_suffix(".json").write_text(json.dumps(meta))


def _encode_into(fh, tokenizer, batch: list[bytes], dtype, bar) -> int:
    """Encode the pieces in `batch`, append their ids to `fh`, empty it; returns the count."""
    n = 0
    for ids in tokenizer.encode(batch):
        fh.write(ids.astype(dtype).tobytes())
        n += len(ids)
    bar.update(sum(len(b) for b in batch))
    batch.clear()
    return n


def _stream(c: Corpus) -> Iterator[bytes | None]:
    """The corpus as one stream: pieces of the documents, None between two documents (empty
    documents are left out)."""
    before = current = False
    for piece in c.documents():
        if piece == b"":
            before, current = before or current, False
            continue
        if not current and before:
            yield None
        current = True
        yield piece


def _doc_pieces(c: Corpus, start: int, end: int, sep: bytes | None) -> Iterator[bytes | None]:
    """The stream's bytes [start, end); a boundary between documents counts as len(SEP) bytes
    and comes as `sep` (None: the tokenizer's end-of-text token goes there)."""
    pos = 0
    for piece in _stream(c):
        n = len(SEP) if piece is None else len(piece)
        a, b = pos, pos + n
        pos = b
        if b <= start:
            continue
        if a >= end:
            return
        if piece is None:
            if sep is not None:  # the separator's bytes, split like any others
                yield sep[max(0, start - a) : min(n, end - a)]
            elif start <= a < end:  # an end-of-text token belongs where it starts
                yield None
            continue
        yield piece[max(0, start - a) : min(n, end - a)]


# ------------------------------------------------------------------ the language-model data set


class TokenData:
    """A tokenized corpus: random training windows and a fixed validation tail (see
    `engine.tasks.batches.WindowBatches`); `x_val`/`y_val` (and `x_train`) give the
    non-overlapping windows as arrays, for the tasks that measure on them."""

    objective = "language_model"
    input_dtype = "long"

    def __init__(
        self,
        name: str,
        tokens: np.ndarray,
        train_tokens: int,
        context: int,
        tokenizer,
        vocab_size: int,
        description: str = "",
        where: str = "",
    ):
        self.name, self.tokens, self.train_tokens, self.context = name, tokens, train_tokens, context
        self.tokenizer, self.vocab_size, self.description = tokenizer, vocab_size, description
        self.classes: list[str] = []
        check_windows(Path(where or name), train_tokens, len(tokens) - train_tokens, context)

    @property
    def train(self) -> np.ndarray:
        return self.tokens[: self.train_tokens]

    @property
    def val(self) -> np.ndarray:
        return self.tokens[self.train_tokens :]

    @property
    def resident(self) -> bool:
        return len(self.tokens) <= RESIDENT_TOKENS

    input_shape = property(lambda self: (self.context,))
    output_size = property(lambda self: self.vocab_size)
    tokens_per_sample = property(lambda self: self.context)

    def windows(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        tokens = np.asarray(self.train if split == "train" else self.val, dtype=np.int64)
        n = (len(tokens) - 1) // self.context
        x = tokens[: n * self.context].reshape(n, self.context)
        y = tokens[1 : n * self.context + 1].reshape(n, self.context)
        return x, y

    x_train = property(lambda self: self.windows("train")[0])
    y_train = property(lambda self: self.windows("train")[1])
    x_val = property(lambda self: self.windows("val")[0])
    y_val = property(lambda self: self.windows("val")[1])

    def info(self) -> DataInfo:
        n_train = (self.train_tokens - 1) // self.context
        n_val = (len(self.tokens) - self.train_tokens - 1) // self.context
        nbytes = len(self.tokens) * 8 if self.resident else 0
        return DataInfo(
            self.name,
            self.objective,
            (self.context,),
            "long",
            self.vocab_size,
            n_train,
            n_val,
            nbytes,
            [],
            self.description,
        )

    def summary(self) -> dict:
        return {
            "dataset": self.name,
            "objective": self.objective,
            "train_samples": self.info().train_samples,
            "val_samples": self.info().val_samples,
            "input_shape": [self.context],
            "output_size": self.vocab_size,
            "tokens": len(self.tokens),
            "tokenizer": {"kind": self.tokenizer.kind, "vocab_size": self.vocab_size},
        }

    def saved(self) -> dict:
        """What a checkpoint keeps so the model can be used later: the tokenizer."""
        return {"tokenizer": self.tokenizer.to_json()}


def check_windows(p: Path, n_train: int, n_val: int, ctx: int) -> None:
    if n_train < ctx + 1 or n_val < ctx + 1:
        raise DataError(
            f"{p}: {n_train + n_val:,} tokens is too short for context {ctx} ({n_train:,} training and "
            f"{n_val:,} validation tokens; each split needs at least {ctx + 1}): lower data.context or "
            "data.val_fraction's imbalance, or add text"
        )


def text_data(data: dict, log=None) -> TokenData:
    tf = build_tokens(data, log)
    vocab = max(tf.tokenizer.vocab_size, data["vocab_size"] if data.get("tokenizer") == "bpe" else 0)
    n = len(tf.tokens)
    return TokenData(
        Path(data["path"]).name,
        tf.tokens,
        tf.train_tokens,
        data["context"],
        tf.tokenizer,
        vocab,
        f"{n:,} tokens ({tf.tokenizer.kind} tokenizer, vocabulary {vocab:,}), context {data['context']}",
        data["path"],
    )


def describe_text(data: dict) -> DataInfo:
    """Token counts without tokenizing: exact for the byte tokenizer and for a corpus already in
    the cache, else estimated for a BPE or tokenizer.json corpus (bytes / 4; the windows check
    uses the byte count, since a byte-level tokenizer never makes more tokens than bytes)."""
    c = corpus(data)
    ctx = data["context"]
    name = data.get("tokenizer") or "byte"
    vocab = tokenizer_vocab(data)
    total, exact = text_bytes(c, CHECK_LIMIT)
    n_val_bytes = int(total * data["val_fraction"])
    counts = None if name == "byte" and c.kind == "file" else cached_counts(data, c, total)
    if counts is not None:
        n_train, n_val = counts
        note = f"{n_train + n_val:,} tokens"
    elif name == "byte":
        n_train, n_val = total - n_val_bytes, n_val_bytes
        note = f"{total:,} bytes" + ("" if exact else " (about)")
    else:
        check_windows(c.path, total - n_val_bytes, n_val_bytes, ctx)
        n_train, n_val = max(ctx + 1, (total - n_val_bytes) // 4), max(ctx + 1, n_val_bytes // 4)
        note = f"{total:,} bytes, ≈{n_train + n_val:,} tokens (estimated until tokenized)"
    check_windows(c.path, n_train, n_val, ctx)
    resident = n_train + n_val <= RESIDENT_TOKENS
    return DataInfo(
        c.label,
        "language_model",
        (ctx,),
        "long",
        vocab,
        (n_train - 1) // ctx,
        (n_val - 1) // ctx,
        (n_train + n_val) * 8 if resident else 0,
        [],
        note,
    )
