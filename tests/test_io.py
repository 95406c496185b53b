"""Image loading, validation and atomic PNG saving (stillguard.images)."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import torch
from helpers import HOSTILE, rand_image, write_png
from PIL import Image, ImageCms

from stillguard import files as sfiles
from stillguard import images as sio
from stillguard.errors import InputError


# ----------------------------------------------------------------------------- valid inputs
def test_rgb_roundtrip_exact_and_metadata_stripped(tmp_path):
    arr = rand_image(24, 40)
    src = write_png(tmp_path / "a.png", arr, pnginfo=_text_info("secret", "gps"))
    loaded = sio.load_image(src)
    assert loaded.tensor.shape == (1, 3, 24, 40) and loaded.tensor.dtype == torch.float32
    assert torch.equal(loaded.tensor[0].permute(1, 2, 0), torch.from_numpy(arr).float() / 255)
    assert loaded.info["sha256"] == sfiles.sha256_file(src) and loaded.alpha is None
    out = sfiles.save_png(loaded.tensor, tmp_path / "out" / "a.protected.png", source=loaded)
    back = Image.open(out)
    assert back.mode == "RGB" and np.array_equal(np.asarray(back), arr)
    assert "secret" not in back.info and not back.getexif()
    assert sorted(os.listdir(out.parent)) == ["a.protected.png"]  # no temp file left


def _text_info(key: str, value: str):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return info


def test_save_png_metadata_and_uint8(tmp_path):
    arr = rand_image(20, 20)
    out = sfiles.save_png(arr, tmp_path / "x.png", metadata={"stillguard": {"eps": 0.03}})
    img = Image.open(out)
    assert np.array_equal(np.asarray(img), arr)
    assert '"eps": 0.03' in img.info["stillguard"]


def test_save_png_refuses_input_non_png_and_directory(tmp_path):
    src = write_png(tmp_path / "in.png", rand_image(20, 20))
    loaded = sio.load_image(src)
    before = src.read_bytes()
    with pytest.raises(InputError, match="overwrite the input"):
        sfiles.save_png(loaded.tensor, src, source=loaded)
    with pytest.raises(InputError, match=r"\.png"):
        sfiles.save_png(loaded.tensor, tmp_path / "out.jpg")
    (tmp_path / "d.png").mkdir()
    with pytest.raises(InputError, match="directory"):
        sfiles.save_png(loaded.tensor, tmp_path / "d.png")
    assert src.read_bytes() == before


def test_save_png_unwritable_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write"):
        sfiles.save_png(rand_image(20, 20), blocker / "sub" / "o.png")

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sfiles.tempfile, "mkstemp", denied)
    with pytest.raises(InputError, match="Permission denied"):
        sfiles.save_png(rand_image(20, 20), tmp_path / "o.png")
    assert not (tmp_path / "o.png").exists()


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = sfiles.atomic_write_bytes(tmp_path / "t.bin", b"old")

    def boom(*a):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sfiles.os, "replace", boom)
    with pytest.raises(sfiles.WriteError, match=r"t\.bin: cannot write it \(No space") as e:
        sfiles.atomic_write_bytes(target, b"new")  # one error naming the file, not a bare OSError
    assert e.value.errno == 28 and e.value.stops_batch
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["t.bin"]


def test_gray16_scaled_and_protected_as_rgb(tmp_path):
    a = (np.arange(32 * 48).reshape(32, 48) * 41 % 65536).astype(np.uint16)
    src = tmp_path / "g16.png"
    Image.fromarray(a).save(src)
    loaded = sio.load_image(src)
    assert loaded.info["bits"] == 16 and loaded.tensor.shape == (1, 3, 32, 48)
    expect = torch.from_numpy(a.astype(np.float32) / 65535)
    for c in range(3):
        assert torch.allclose(loaded.tensor[0, c], expect)
    out = sfiles.save_png(loaded.tensor, tmp_path / "o.png")
    assert Image.open(out).mode == "RGB" and Image.open(out).size == (48, 32)


def test_gray_l_becomes_rgb(tmp_path):
    arr = rand_image(20, 30, 1)[..., 0]
    loaded = sio.load_image(write_png(tmp_path / "l.png", arr))
    assert loaded.tensor.shape == (1, 3, 20, 30)
    assert torch.equal(loaded.tensor[0, 0], loaded.tensor[0, 2])
    assert torch.equal(loaded.tensor[0, 1], torch.from_numpy(arr).float() / 255)


def test_cmyk_jpeg(tmp_path):
    img = Image.fromarray(rand_image(24, 32)).convert("CMYK")
    img.save(tmp_path / "c.jpg", quality=95)
    loaded = sio.load_image(tmp_path / "c.jpg")
    ref = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB"), dtype=np.float32) / 255
    assert loaded.info["mode"] == "CMYK" and loaded.tensor.shape == (1, 3, 24, 32)
    assert np.allclose(loaded.tensor[0].permute(1, 2, 0).numpy(), ref)


def test_rgba_alpha_kept_unchanged(tmp_path):
    arr = rand_image(20, 24, 4)
    arr[..., 3] = np.linspace(0, 255, 24, dtype=np.uint8)[None, :]
    loaded = sio.load_image(write_png(tmp_path / "a.png", arr))
    assert np.array_equal(loaded.alpha, arr[..., 3])
    assert torch.equal(
        loaded.tensor[0].permute(1, 2, 0), torch.from_numpy(arr[..., :3]).float() / 255
    )
    shifted = (loaded.tensor + 1 / 255).clamp(0, 1)
    out = np.asarray(Image.open(sfiles.save_png(shifted, tmp_path / "o.png", source=loaded)))
    assert out.shape == (20, 24, 4) and np.array_equal(out[..., 3], arr[..., 3])


def test_opaque_alpha_dropped(tmp_path):
    arr = rand_image(20, 20, 4)
    arr[..., 3] = 255
    assert sio.load_image(write_png(tmp_path / "a.png", arr)).alpha is None


def test_palette_with_and_without_transparency(tmp_path):
    base = Image.fromarray(rand_image(20, 20)).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=8
    )
    base.save(tmp_path / "p.png")
    loaded = sio.load_image(tmp_path / "p.png")
    ref = np.asarray(base.convert("RGB"), dtype=np.float32) / 255
    assert loaded.alpha is None and np.allclose(loaded.tensor[0].permute(1, 2, 0).numpy(), ref)
    base.save(tmp_path / "t.png", transparency=0)
    loaded = sio.load_image(tmp_path / "t.png")
    assert loaded.alpha is not None and set(np.unique(loaded.alpha)) <= {0, 255}
    assert (loaded.alpha == 0).sum() == (np.asarray(base) == 0).sum()


def test_exif_orientation_applied_and_not_written_back(tmp_path):
    arr = rand_image(20, 40)  # stored 40 wide, 20 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    exif[0x010F] = "CameraMaker"
    Image.fromarray(arr).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    loaded = sio.load_image(tmp_path / "r.jpg")
    assert loaded.tensor.shape == (1, 3, 40, 20) and loaded.info["exif_orientation"] == 6
    assert loaded.info["file_size"] == [40, 20] and loaded.info["size"] == [20, 40]
    plain = sfiles.save_png(loaded.tensor, tmp_path / "o.png", source=loaded)
    assert not Image.open(plain).getexif()
    kept = sfiles.save_png(loaded.tensor, tmp_path / "k.png", source=loaded, keep_metadata=True)
    ex = Image.open(kept).getexif()
    assert ex.get(0x010F) == "CameraMaker" and ex.get(0x0112) in (None, 1)
    assert Image.open(kept).size == (20, 40)


def test_icc_profile_converted_to_srgb(tmp_path):
    prof = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    n = struct.unpack(">I", prof[128:132])[0]
    tags = {bytes(prof[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(n)}
    r, b = tags[b"rXYZ"], tags[b"bXYZ"]  # swap the red and blue primaries: a non-sRGB profile
    prof[r + 4 : r + 12], prof[b + 4 : b + 12] = prof[b + 4 : b + 12], prof[r + 4 : r + 12]
    prof = bytes(prof).replace("sRGB".encode("utf-16-be"), "xRGB".encode("utf-16-be"))
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(tmp_path / "icc.png", icc_profile=prof)
    loaded = sio.load_image(tmp_path / "icc.png")
    mean = loaded.tensor[0].mean(dim=(1, 2))
    assert loaded.info["icc_converted"] and mean[2] > 0.8 and mean[0] < 0.2
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(red).save(tmp_path / "s.png", icc_profile=srgb)
    same = sio.load_image(tmp_path / "s.png")
    assert not same.info["icc_converted"] and same.tensor[0, 0].min() == 1.0
    Image.fromarray(red).save(tmp_path / "bad.png", icc_profile=b"not a profile at all")
    assert sio.load_image(tmp_path / "bad.png").tensor[0, 0].min() == 1.0  # ignored, logged


@pytest.mark.parametrize(
    "size,ok", [((16, 16), True), ((16, 1200), True), ((8, 8), False), ((1, 4000), False)]
)
def test_small_and_thin(tmp_path, size, ok):
    w, h = size
    src = write_png(tmp_path / "s.png", rand_image(h, w))
    if ok:
        assert sio.load_image(src).tensor.shape == (1, 3, h, w)
    else:
        with pytest.raises(InputError, match="too small"):
            sio.load_image(src)


def test_gif_still_ok_animated_refused(tmp_path):
    frames = [Image.fromarray(rand_image(20, 20, seed=i)).convert("P") for i in range(3)]
    frames[0].save(tmp_path / "still.gif")
    assert sio.load_image(tmp_path / "still.gif").tensor.shape == (1, 3, 20, 20)
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    with pytest.raises(InputError, match="3 frames"):
        sio.load_image(tmp_path / "anim.gif")


# ----------------------------------------------------------------------------- hostile inputs
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_inputs_refused_in_one_line(tmp_path, case):
    make, pattern = HOSTILE[case]
    path = make(tmp_path)
    with pytest.raises(InputError, match=pattern) as err:
        sio.load_image(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_symlink_loop_and_broken_link(tmp_path):
    loop = tmp_path / "loop.png"
    loop.symlink_to(tmp_path / "loop2.png")
    (tmp_path / "loop2.png").symlink_to(loop)
    with pytest.raises(InputError, match="loop"):
        sio.load_image(loop)
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "gone.png")
    with pytest.raises(InputError, match="broken symbolic link"):
        sio.load_image(dangling)


def test_fifo_refused(tmp_path):
    os.mkfifo(tmp_path / "f.png")
    with pytest.raises(InputError, match="not a regular file"):
        sio.load_image(tmp_path / "f.png")


def test_unreadable_file(tmp_path, monkeypatch):
    src = write_png(tmp_path / "a.png", rand_image(20, 20))

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sio, "open", denied, raising=False)
    with pytest.raises(InputError, match="permission denied"):
        sio.load_image(src)


def test_max_pixels_is_configurable(tmp_path):
    src = write_png(tmp_path / "a.png", rand_image(40, 40))
    with pytest.raises(InputError, match="--max-pixels"):
        sio.load_image(src, max_pixels=1000)
    assert sio.load_image(src, max_pixels=1600).tensor.shape[-1] == 40
