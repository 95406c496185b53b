"""Helpers shared by several test files (hostile input files, a scripted fake I2V model).

Imported as ``from helpers import ...`` (pytest puts this folder on ``sys.path``); fixtures live in
``conftest.py``.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def rand_image(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def write_png(path: Path, arr: np.ndarray, **kw) -> Path:
    Image.fromarray(arr.squeeze()).save(path, **kw)
    return path


def bomb_png(path: Path, w: int, h: int) -> Path:
    """A PNG whose header declares ``w x h`` but carries almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat))
    return path


def truncated(tmp_path: Path, fmt: str) -> Path:
    buf = io.BytesIO()
    Image.fromarray(rand_image(64, 64)).save(buf, format=fmt)
    data = buf.getvalue()
    p = tmp_path / f"t.{fmt.lower()}"
    p.write_bytes(data[: len(data) // 2])
    return p


def write_bytes(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def ico_as(p: Path) -> Path:
    Image.fromarray(rand_image(32, 32)).save(p, format="ICO")
    return p


HOSTILE = {
    "missing": (lambda t: t / "nope.png", "no such file"),
    "directory": (lambda t: (t / "dir.png").mkdir() or t / "dir.png", "directory"),
    "empty": (lambda t: (t / "e.png").write_bytes(b"") and t / "e.png" or t / "e.png", "empty"),
    "truncated-png": (lambda t: truncated(t, "PNG"), "truncated|broken"),
    "truncated-jpeg": (lambda t: truncated(t, "JPEG"), "truncated|broken"),
    "truncated-tiff": (lambda t: truncated(t, "TIFF"), "truncated|broken"),
    "text-as-jpg": (lambda t: write_bytes(t / "x.jpg", b"hello, I am text\n"), "looks like text"),
    "svg": (
        lambda t: write_bytes(t / "x.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>'),
        "SVG",
    ),
    "broken-tiff": (
        lambda t: write_bytes(t / "x.tiff", b"II*\x00\xff\xff\xff\x7f" + b"\x00" * 8),
        "broken|TIFF|not an image",
    ),
    "bomb": (lambda t: bomb_png(t / "b.png", 100_000, 100_000), "decompression bomb"),
    "over-limit": (lambda t: bomb_png(t / "b.png", 10_000, 6_000), "megapixels"),
    "unsupported-format": (lambda t: ico_as(t / "x.png"), "not supported"),
}


def photo(size: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    low = torch.rand(1, 3, size // 6, size // 6, generator=g)
    img = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return img.clamp(0.05, 0.9)


def mark(x: torch.Tensor) -> torch.Tensor:
    """The fake model's "protection": a white 8x8 corner."""
    y = x.clone()
    y[..., :8, :8] = 1.0
    return y


class FakeAdapter:
    """Scripted I2V stand-in: content slides right by (1 + seed) px/frame (wrapping around).

    Marked images (white top-left corner) give a frozen video (``mode="freeze"``) or seeded noise
    (``mode="degrade"``).
    """

    height = width = 48
    num_frames = 6
    is_real = False

    def __init__(self, mode: str = "freeze") -> None:
        self.mode = mode
        self.calls: list[int] = []

    def describe(self) -> dict:
        return {"target": "fake", "model": "fake", "num_frames": self.num_frames}

    def generate(self, x, *, seed=0, num_frames=None, num_inference_steps=None):
        self.calls.append(seed)
        n = num_frames or self.num_frames
        marked = bool(x[..., :8, :8].mean() > 0.97)
        if marked and self.mode == "degrade":
            g = torch.Generator().manual_seed(seed)
            return torch.rand(x.shape[0], n, 3, self.height, self.width, generator=g)
        step = 0 if marked else 1 + seed
        return torch.stack([torch.roll(x, step * t, dims=-1) for t in range(n)], dim=1)


class Wipe:
    """Stand-in purification that removes the mark (paints the corner mid-gray)."""

    label = "wipe"

    def real(self, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        y[..., :8, :8] = 0.5
        return y


def hub_snapshot(cache: Path, repo_id: str, files: Path | dict[str, bytes]) -> Path:
    """A model in a Hugging Face hub cache laid out as the hub client writes it (no network).

    ``files`` is a folder to copy (e.g. a ``save_pretrained`` folder) or ``{relative path: bytes}``
    (a partial download). Returns the snapshot folder.
    """
    import shutil

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    if isinstance(files, Path):
        shutil.copytree(files, snap, dirs_exist_ok=True)
    else:
        for name, data in files.items():
            (snap / name).parent.mkdir(parents=True, exist_ok=True)
            (snap / name).write_bytes(data)
    return snap


def fake_model_folder(folder: Path, settings: dict | None = None) -> Path:
    """A folder that looks like a pipeline (model_index.json, a safetensors file) but loads nothing."""
    import json

    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "CogVideoXImageToVideoPipeline"}')
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 16)
    if settings is not None:
        (folder / "stillguard.json").write_text(json.dumps(settings))
    return folder


def draw_inputs(adapter, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A training timestep ``(1,)`` and noise of the adapter's latent shape, drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return adapter.sample_timesteps(1, g), torch.randn(adapter.latent_shape(1), generator=g)


def eight_bit(adapter, image) -> torch.Tensor:
    """``image`` at the adapter's working size, rounded to 8 bits (what the pipeline's PIL gets)."""
    return (adapter.prepare(image) * 255).round() / 255


def smooth_photo8(adapter, seed: int = 0) -> torch.Tensor:
    """A smooth 8-bit photo ``(1, 3, H, W)`` at the working size (the pipeline's PIL path then
    resizes nothing): a 4×8 random image upsampled bilinearly."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 4, 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=(adapter.height, adapter.width), mode="bilinear")
    return (x.clamp(0, 1) * 255).round() / 255


def as_pil(x8: torch.Tensor):
    """The first image of an 8-bit ``(B, 3, H, W)`` tensor in [0, 1] as a PIL image."""
    from PIL import Image

    return Image.fromarray((x8[0].permute(1, 2, 0) * 255).round().byte().numpy())


def denoise_seen(adapter, x, seed: int = 0) -> tuple[dict, torch.Tensor, torch.Tensor, object]:
    """One no-grad ``adapter.denoise(x, t, noise)`` at inputs drawn from ``seed``
    (:func:`draw_inputs`); returns ``(seen, t, noise, out)``, ``seen`` the keyword inputs of the
    transformer's last call (what the pipeline's own transformer call gets)."""
    seen: dict = {}
    hook = adapter.pipe.transformer.register_forward_pre_hook(
        lambda _m, _a, kw: seen.update(kw), with_kwargs=True
    )
    try:
        t, noise = draw_inputs(adapter, seed)
        with torch.no_grad():
            out = adapter.denoise(x, t, noise)
    finally:
        hook.remove()
    return seen, t, noise, out


def check_capture_under_checkpointing(
    adapter, image, t, noise, layer: str, block: str, enable, options=dict
) -> None:
    """Recording recomputes q/k outside the checkpoint's bookkeeping: with gradient checkpointing
    switched on by ``enable()``, the image's gradient through a captured attention map and block
    output is the same as without, and each layer is recorded once per denoiser call.
    ``options()``: the capture's options, built afresh for each run (a ``mode="sampled"``
    generator starts from its seed each time)."""

    def run():
        x = image.clone().requires_grad_(True)
        with adapter.capture(hidden=[block], attention=[layer], **options()) as cap:
            out = adapter.denoise(x, t, noise)
        (cap.attention[layer][0][..., 0].mean() + cap.hidden[block][0].mean()).backward()
        assert out.pred.shape == adapter.latent_shape(1)
        return x.grad, cap

    plain, _ = run()
    enable()
    ckpt, cap = run()
    assert len(cap.attention[layer]) == 1 and len(cap.hidden[block]) == 1
    torch.testing.assert_close(ckpt, plain)


def save_tiny_text_encoder(folder: Path, words: list[str], model_class, config_class, *,
                           register: bool = False):  # fmt: skip
    """A word-level tokenizer of ``words`` and a random 1-layer T5-family encoder (width 16),
    saved offline into ``folder/tokenizer`` and ``folder/text_encoder``; ``register`` names them
    in ``model_index.json``. Returns ``(tokenizer, encoder)``."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    tok.save_pretrained(str(folder / "tokenizer"))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        cfg = config_class(
            vocab_size=len(vocab), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2
        )
        encoder = model_class(cfg).eval()
    encoder.save_pretrained(str(folder / "text_encoder"))
    if register:
        index = json.loads((folder / "model_index.json").read_text())
        index["text_encoder"] = ["transformers", model_class.__name__]
        index["tokenizer"] = ["transformers", "PreTrainedTokenizerFast"]
        (folder / "model_index.json").write_text(json.dumps(index))
    return tok, encoder


def one_error(res) -> str:
    """The one ``error:`` line of a CLI result: no traceback, nothing else on stderr."""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in res.output, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


class SessionWatch:
    """The processes a command started, recorded while it runs; which of them are still there.

    The command must be started in a session of its own (``Popen(..., start_new_session=True)``):
    its members are the processes of that session and their descendants (one that left the
    session but not the tree, or the tree but not the session, still counts), read from ``/proc``
    (Linux) every ``every`` seconds and kept as ``(pid, start time)``, so a reused pid is never
    mistaken for one of them. ``on_poll(members)`` is called with ``[(pid, command line)]`` after
    each look (to kill a worker mid-run, say).
    """

    def __init__(self, proc, on_poll=None, every: float = 0.1) -> None:
        import threading

        if not Path("/proc/self/stat").exists():
            import pytest

            pytest.skip("needs /proc (Linux)")
        self.proc, self.root, self.on_poll, self.every = proc, proc.pid, on_poll, every
        self.seen: dict[tuple[int, int], str] = {}
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    @staticmethod
    def table() -> dict[int, tuple[int, int, int, str]]:
        """pid -> (parent pid, session id, start time, state) of every process."""
        rows = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    stat = Path(f"/proc/{d}/stat").read_text()
                except OSError:
                    continue
                f = stat[stat.rindex(")") + 2 :].split()
                rows[int(d)] = (int(f[1]), int(f[3]), int(f[19]), f[0])
        return rows

    def _look(self) -> None:
        rows = self.table()
        pids = {p for p, start in self.seen if rows.get(p, (0, 0, start))[2] == start}
        pids.add(self.root)
        grew = True
        while grew:  # the session, then every descendant of a member
            new = {
                p for p, r in rows.items() if p not in pids and (r[1] == self.root or r[0] in pids)
            }
            pids |= new
            grew = bool(new)
        members = []
        for pid in pids & rows.keys():
            key = (pid, rows[pid][2])
            # the latest name: Ray renames its processes (ray::ProtectWorker.protect while it works)
            self.seen[key] = _cmdline(pid) or self.seen.get(key, "")
            members.append((pid, self.seen[key]))
        if self.on_poll is not None:
            self.on_poll(members)

    def _watch(self) -> None:
        import time

        while self.proc.poll() is None:
            self._look()
            time.sleep(self.every)
        self._look()  # what it started last

    def left(self, within: float) -> list[str]:
        """Command lines of the recorded processes (the command's own aside) still alive (not a
        zombie) after waiting up to ``within`` seconds for them to go."""
        import time

        self._thread.join()
        deadline = time.monotonic() + within
        while True:
            rows = self.table()
            alive = [cmd or str(pid) for (pid, start), cmd in self.seen.items()
                     if pid != self.root and pid in rows and rows[pid][2] == start
                     and rows[pid][3] != "Z"]  # fmt: skip
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.2)

    def kill_left(self) -> None:
        """SIGKILL what is left of the command (so that a failed test leaves nothing either)."""
        import signal

        rows = self.table()
        for pid, start in self.seen:
            if pid in rows and rows[pid][2] == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def exact_map_and_io(adapter, image, layer: str):
    """One ``denoise`` (fixed draws) with an exact capture of the attention ``layer`` open; returns
    ``(probs, layout, module input, module output)`` of that attention module, for checking that
    the recorded map reproduces the module's own output."""
    mod = adapter.pipe.transformer.get_submodule(layer)
    seen: dict[str, torch.Tensor] = {}
    h1 = mod.register_forward_pre_hook(lambda m, args: seen.setdefault("in", args[0]))
    h2 = mod.register_forward_hook(lambda m, args, out: seen.setdefault("out", out))
    t, noise = draw_inputs(adapter)
    try:
        with torch.no_grad(), adapter.capture(attention=[layer]) as cap:
            adapter.denoise(image, t, noise)
    finally:
        h1.remove()
        h2.remove()
    return cap.attention[layer][0], cap.layout[layer], seen["in"], seen["out"]


def random_protector(
    path: Path,
    method: str = "advdm",
    targets: tuple = (("cogvideox-i2v", "tiny"),),
    seed: int = 0,
    method_options: dict | None = None,
) -> Path:
    """A protector file with small random weights (it perturbs, it protects nothing), recording
    ``method`` (what ``refine`` runs) and ``targets``."""
    from stillguard.protector import Architecture, Protector, ProtectorNet, save_protector

    torch.manual_seed(seed)
    net = ProtectorNet(Architecture(width=8, levels=2))
    torch.nn.init.normal_(net.out[-1].weight, std=0.5)  # the fresh last layer is zero
    training = {"method": method, "method_options": method_options or {},
                "targets": [{"target": t, "model": m} for t, m in targets]}  # fmt: skip
    return save_protector(Protector(net, 8 / 255, (64, 64), training), path)
