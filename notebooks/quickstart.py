# %% [markdown]
# # Quickstart: Videoshop as a library (toy model, offline)
# A notebook in percent format (open it with Jupyter + jupytext or VS Code, or run it as a script:
# `python notebooks/quickstart.py [OUT_DIR]`). No Hydra: the pipeline, one generated sample, one edit, its
# quality against the sample's ground truth, and a contact sheet (source / ground truth / edit).
# The toy model is small and weak (videoshop/assets/toy/MODEL_CARD.md): its numbers are real, but they are not SVD's.

# %%
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]) if "__file__" in globals() else "..")
from videoshop_bench.datasets.synthetic import make_sample  # noqa: E402
from videoshop.families import model_preset  # noqa: E402
from videoshop.models import build_pipeline  # noqa: E402

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else Path("outputs/quickstart")
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. The pipeline and a sample
# `build_pipeline` takes a plain model mapping: a preset (`model_preset`: svd, svd_xt, svd_random, tiny, toy, ...) or your own
# (`kind`, `hub_id`/`path`, `dtype`, `num_frames`, `height`, `width`).

# %%
toy = model_preset("toy")
pipe = build_pipeline(toy, device="cpu")
pipe.set_progress_bar_config(disable=True)
sample = make_sample(1000, 3, num_frames=toy["num_frames"], height=toy["height"], width=toy["width"],
                     difficulty="easy")
print(sample.sample_id, sample.edit_type, sample.source_video.shape)

# %% [markdown]
# ## 2. Edit: invert the source with noise extrapolation, regenerate from the edited first frame
# Any `VideoshopConfig` field is a keyword (e.g. `threshold=2.0`); `callback_on_step_end` sees every generation step.

# %%
norms = []
out = pipe(video=sample.source_video, edited_image=sample.edited_image, generator=torch.Generator().manual_seed(0),
           callback_on_step_end=lambda p, i, sigma, kw: norms.append(float(kw["latents"].std())) or {})
print(f"NFE {out.nfe}, finite {out.finite}, stages {({k: round(v, 3) for k, v in out.timings.items()})}")
print("latent std after each generation step:", np.round(norms, 3))

# %% [markdown]
# ## 3. How close is the edit to the ground-truth edited video (and the unedited source, for reference)?

# %%
def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse) if mse > 0 else float("inf")


print(f"PSNR vs ground truth: edit {psnr(out.frames, sample.gt_edited_video):.2f} dB, "
      f"unedited source {psnr(sample.source_video, sample.gt_edited_video):.2f} dB")

# %% [markdown]
# ## 4. Contact sheet: rows source / ground truth / edit

# %%
from PIL import Image  # noqa: E402

rows = [np.concatenate(list(v), axis=1) for v in (sample.source_video, sample.gt_edited_video, out.frames)]
sheet = np.concatenate(rows, axis=0)
Image.fromarray(sheet).resize((sheet.shape[1] * 3, sheet.shape[0] * 3), Image.NEAREST).save(OUT / "contact_sheet.png")
print("wrote", OUT / "contact_sheet.png")
