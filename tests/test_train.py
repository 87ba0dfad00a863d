"""The trainer: learning, exact resume, stop requests, checkpoints and exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_deblurgan.gan.io.checkpoint import load_checkpoint
from napari_deblurgan.gan.model.narrow import narrow_generator
from napari_deblurgan.gan.model.weights import load_generator
from napari_deblurgan.gan.training.train import MAX_NONFINITE_STEPS, TrainConfig, Trainer, TrainingDiverged, lr_factor

TINY = dict(
    preset="fast",
    generator={"ngf": 8, "n_blocks": 1},
    critic={"ndf": 8, "n_layers": 2},
    content_loss="l1",
    crop=32,
    batch_size=2,
    lr=1e-3,
    schedule="cosine",
    validate_every=3,
    checkpoint_every=3,
    log_every=1,
)


class FixedBatch:
    """The same blurred/sharp batch at every step."""

    def __init__(self) -> None:
        import skimage.data

        from napari_deblurgan.gan.data.blur import blur_image, linear_kernel

        sharp = skimage.data.astronaut()[200:264, 200:264].astype(np.float32) / 255
        blurred = blur_image(sharp, linear_kernel(7, 30))
        to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None] * 2 - 1  # noqa: E731
        self.pair = (to_t(blurred).repeat(2, 1, 1, 1), to_t(sharp).repeat(2, 1, 1, 1))

    def batch(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pair[0].clone(), self.pair[1].clone()


def test_overfitting_a_fixed_batch_lowers_the_content_loss(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "steps": 40, "adv_weight": 0.0, "lr": 1e-3, "generator": {"ngf": 16, "n_blocks": 2}})
    trainer = Trainer(cfg, tmp_path, device="cpu", source=FixedBatch())
    losses = [e.losses["content"] for e in trainer.steps()]
    assert np.mean(losses[-5:]) < 0.9 * losses[0]  # the identity (blurred input) scores losses[0]


def _run(tmp_path: Path, name: str, stop_at: int | None = None, resume: bool = False) -> Trainer:
    cfg = TrainConfig(**{**TINY, "steps": 6, "adv_weight": 1.0, "adv_start": 2, "critic_steps": 2, "data": "skimage"})
    trainer = Trainer(cfg, tmp_path / name, device="cpu", resume=resume)
    for event in trainer.steps():
        if event.step == stop_at:
            trainer.request_stop()
    return trainer


def test_stop_and_resume_gives_exactly_the_straight_run(tmp_path: Path) -> None:
    straight = _run(tmp_path, "straight")
    stopped = _run(tmp_path, "split", stop_at=4)
    assert stopped.step == 4 and load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 4
    resumed = _run(tmp_path, "split", resume=True)
    assert resumed.step == 6
    for net in ("generator", "critic"):
        a, b = getattr(straight, net).state_dict(), getattr(resumed, net).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), net


def test_run_folder_holds_checkpoint_model_and_metrics(tmp_path: Path) -> None:
    trainer = _run(tmp_path, "run")
    run = tmp_path / "run"
    model = load_generator(run / "generator.safetensors")
    assert all(torch.equal(v, trainer.generator.state_dict()[k]) for k, v in model.state_dict().items())
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) == 7
    assert json.loads(load_checkpoint(run / "checkpoint.pt")["config"])["critic_steps"] == 2
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(",")))
    assert float(last["val_psnr"]) > 10 and last["critic"] != ""


def test_a_second_run_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    _run(tmp_path, "run", stop_at=1)
    with pytest.raises(FileExistsError, match="--resume"):
        _run(tmp_path, "run")


def test_events_carry_validation_and_preview(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "steps": 3, "adv_weight": 0.0})
    events = list(Trainer(cfg, tmp_path, device="cpu", source=FixedBatch()).steps())
    last = events[-1]
    assert last.validation is not None and {"psnr", "ssim"} <= set(last.validation)
    assert last.preview is not None and last.preview.dtype == np.uint8 and last.preview.shape[-1] == 3
    assert last.checkpoint is not None and last.checkpoint.is_file()


def test_schedules() -> None:
    linear = TrainConfig(steps=100, decay_start=0.5)
    assert lr_factor(linear, 0) == 1 and lr_factor(linear, 49) == 1 and lr_factor(linear, 75) == pytest.approx(0.5)
    cosine = TrainConfig(steps=100, schedule="cosine", warmup=10)
    assert lr_factor(cosine, 0) == pytest.approx(0.1) and lr_factor(cosine, 55) == pytest.approx(0.5)


def test_training_on_aligned_images_validates_on_held_out_ones(tmp_path: Path) -> None:
    import skimage.data

    from napari_deblurgan.gan.data.blur import blur_image, linear_kernel
    from napari_deblurgan.gan.io.images import write_image

    folder = tmp_path / "aligned"
    folder.mkdir()
    base = skimage.data.astronaut()
    for i in range(3):
        sharp = base[i * 100 : i * 100 + 64, :64]
        blurred = (blur_image(sharp / 255, linear_kernel(5, 45 * i)) * 255).round().astype(np.uint8)
        write_image(folder / f"{i}.png", np.concatenate([blurred, sharp], axis=1))
    cfg = TrainConfig(**{**TINY, "steps": 2, "adv_weight": 0.0, "data": str(folder), "data_mode": "aligned"})
    trainer = Trainer(cfg, tmp_path / "run", device="cpu")
    assert [p[0].name for p in trainer.source.pairs] == ["0.png", "2.png"]  # 1.png is held out
    events = list(trainer.steps())
    assert events[-1].validation is not None and events[-1].preview.shape == (64, 64, 3)


def test_a_stage_starts_from_an_earlier_model_of_the_same_architecture(tmp_path: Path) -> None:
    first = Trainer(TrainConfig(**{**TINY, "steps": 2, "adv_weight": 0.0}), tmp_path / "a", "cpu", source=FixedBatch())
    first.fit()
    model = first.export(tmp_path / "stage1.safetensors")
    cfg = TrainConfig(**{**TINY, "steps": 2, "adv_weight": 0.0, "seed": 9, "init": str(model)})
    second = Trainer(cfg, tmp_path / "b", "cpu", source=FixedBatch())
    a, b = first.generator.state_dict(), second.generator.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    for generator in ({"ngf": 16, "n_blocks": 1}, {"ngf": 4, "n_blocks": 2}):  # wider, or other depth
        other = TrainConfig(**{**cfg.to_dict(), "generator": generator})
        with pytest.raises(ValueError, match="same preset"):
            Trainer(other, tmp_path / "c", "cpu", source=FixedBatch())


def test_a_narrower_stage_starts_from_the_wider_model_narrowed_on_training_crops(tmp_path: Path) -> None:
    first = Trainer(TrainConfig(**{**TINY, "steps": 2, "adv_weight": 0.0}), tmp_path / "a", "cpu", source=FixedBatch())
    first.fit()
    model = first.export(tmp_path / "wide.safetensors")
    cfg = TrainConfig(**{**TINY, "generator": {"ngf": 4, "n_blocks": 1}, "adv_weight": 0.0, "init": str(model)})
    narrow = Trainer(cfg, tmp_path / "b", "cpu", source=FixedBatch()).generator
    source = FixedBatch()
    expected = narrow_generator(load_generator(model), 4, torch.cat([source.batch(s)[0] for s in range(4)]))
    assert narrow.config.ngf == 4
    assert all(torch.equal(narrow.state_dict()[k], v) for k, v in expected.state_dict().items())


def test_a_deeper_nafnet_stage_starts_from_the_shallower_model_with_the_same_output(tmp_path: Path) -> None:
    shallow = {"arch": "nafnet", "ngf": 4, "encoder_blocks": [0, 1], "n_blocks": 1}
    base = {**TINY, "generator": shallow, "steps": 2, "adv_weight": 0.0}
    first = Trainer(TrainConfig(**base), tmp_path / "a", "cpu", source=FixedBatch())
    first.fit()
    model = first.export(tmp_path / "shallow.safetensors")
    deep = TrainConfig(**{**base, "generator": {**shallow, "n_blocks": 3}, "init": str(model)})
    deeper = Trainer(deep, tmp_path / "b", "cpu", source=FixedBatch()).generator
    assert len(deeper.model.middle) == 3
    x = FixedBatch().batch(0)[0]
    with torch.no_grad():
        torch.testing.assert_close(deeper(x), load_generator(model)(x), rtol=0, atol=1e-6)
    shallower = TrainConfig(**{**base, "generator": {**shallow, "n_blocks": 0}, "init": str(model)})
    with pytest.raises(ValueError, match="fewer blocks"):
        Trainer(shallower, tmp_path / "c", "cpu", source=FixedBatch())


def test_resume_overrides_branch_a_run_into_its_adversarial_phase(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "steps": 4, "adv_weight": 0.0, "adv_start": 2})
    Trainer(cfg, tmp_path, "cpu", source=FixedBatch()).fit()
    branch = TrainConfig(**{**TINY, "steps": 6, "adv_weight": 0.5})
    kept = Trainer(branch, tmp_path, "cpu", resume=True, source=FixedBatch())
    assert kept.critic is None and kept.cfg.steps == 6  # only steps is taken from the new config by default
    trainer = Trainer(
        branch, tmp_path, "cpu", resume=True, source=FixedBatch(), resume_overrides=("steps", "adv_weight")
    )
    assert trainer.step == 4 and trainer.cfg.adv_weight == 0.5 and trainer.cfg.adv_start == 2
    events = list(trainer.steps())
    assert events[-1].step == 6 and "critic" in events[-1].losses


def test_resume_overrides_of_the_optimiser_settings_apply(tmp_path: Path) -> None:
    """An optimiser's saved state brings back its betas and weight decay; the recipe's must win."""
    cfg = TrainConfig(**{**TINY, "steps": 2, "adv_weight": 0.1, "adv_start": 0})
    Trainer(cfg, tmp_path, "cpu", source=FixedBatch()).fit()
    branch = TrainConfig(**{**TINY, "steps": 3, "betas": (0.9, 0.99), "weight_decay": 0.05})
    trainer = Trainer(
        branch, tmp_path, "cpu", resume=True, source=FixedBatch(), resume_overrides=("steps", "betas", "weight_decay")
    )
    assert [g["betas"] for g in trainer.opt_g.param_groups + trainer.opt_d.param_groups] == [(0.9, 0.99)] * 2
    assert trainer.opt_g.param_groups[0]["weight_decay"] == 0.05 and trainer.opt_d.param_groups[0]["weight_decay"] == 0
    assert json.loads(trainer.state_dict()["config"])["betas"] == [0.9, 0.99]


def test_ema_tracks_the_weight_average_exports_it_and_resumes_exactly(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "steps": 4, "adv_weight": 0.0, "ema": 0.5})
    trainer = Trainer(cfg, tmp_path / "a", "cpu", source=FixedBatch())
    expected: dict[str, torch.Tensor] = {}
    for _ in trainer.steps():  # the first update copies the weights, each later one halves the gap
        live = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
        expected = {k: 0.5 * expected[k] + 0.5 * v if expected else v for k, v in live.items()}
    averaged = trainer.model.state_dict()
    assert all(torch.allclose(averaged[k], expected[k], atol=1e-6) for k in expected)
    assert any(not torch.equal(averaged[k], live[k]) for k in averaged)
    exported = load_generator(tmp_path / "a" / "generator.safetensors", "cpu").state_dict()
    assert all(torch.equal(exported[k], averaged[k]) for k in averaged)

    stopped = Trainer(cfg, tmp_path / "b", "cpu", source=FixedBatch())
    for event in stopped.steps():
        if event.step == 3:
            stopped.request_stop()
    resumed = Trainer(cfg, tmp_path / "b", "cpu", resume=True, source=FixedBatch())
    resumed.fit()
    again = resumed.model.state_dict()
    assert resumed.step == 4 and all(torch.equal(again[k], averaged[k]) for k in averaged)


class PoisonedBatch(FixedBatch):
    """FixedBatch, with a NaN in the blurred input at the training steps in ``bad`` (all when None)."""

    def __init__(self, bad: set[int] | None) -> None:
        super().__init__()
        self.bad = bad

    def batch(self, step: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        blurred, sharp = super().batch(step, rank)
        if step < 2**31 - 1 and (self.bad is None or step in self.bad):  # that step is validation's batch
            blurred[0, 0, 5, 5] = float("nan")
        return blurred, sharp


@pytest.mark.parametrize("grad_clip", [1.0, 0.0])
def test_a_step_with_nan_gradients_is_skipped_and_leaves_the_weights_finite(tmp_path: Path, grad_clip: float) -> None:
    cfg = TrainConfig(**{**TINY, "steps": 4, "adv_weight": 0.0, "ema": 0.5, "grad_clip": grad_clip})
    trainer = Trainer(cfg, tmp_path / "nan", "cpu", source=PoisonedBatch({1}))
    after: list[dict[str, torch.Tensor]] = []
    for event in trainer.steps():
        after.append({k: v.clone() for k, v in trainer.generator.state_dict().items()})
        assert np.isnan(event.losses["content"]) == (event.step == 2)
    assert all(torch.equal(after[0][k], after[1][k]) for k in after[0])  # step 2 did not move the weights
    assert any(not torch.equal(after[1][k], after[2][k]) for k in after[1])  # step 3 did
    assert trainer.step == 4 and all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())
    exported = load_generator(tmp_path / "nan" / "generator.safetensors")  # refuses non-finite weights
    assert all(torch.isfinite(p).all() for p in exported.parameters())


def test_a_run_whose_gradients_stay_nan_stops_with_advice(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "steps": 100, "adv_weight": 0.0, "checkpoint_every": 5})
    trainer = Trainer(cfg, tmp_path, "cpu", source=PoisonedBatch(None))
    with pytest.raises(TrainingDiverged, match=f"NaN or infinite in {MAX_NONFINITE_STEPS} steps in a row") as info:
        trainer.fit()
    assert f"--init {tmp_path / 'generator.safetensors'} --lr" in str(info.value)
    assert trainer.step == MAX_NONFINITE_STEPS - 1 == load_checkpoint(tmp_path / "checkpoint.pt")["step"]
    assert all(torch.isfinite(p).all() for p in load_generator(tmp_path / "generator.safetensors").parameters())


@pytest.mark.parametrize(("bad", "diverges"), [({0, 2}, False), ({1, 2}, True)])
def test_only_bad_steps_in_a_row_count_as_divergence(
    tmp_path: Path, monkeypatch, bad: set[int], diverges: bool
) -> None:
    monkeypatch.setattr("napari_deblurgan.gan.training.train.MAX_NONFINITE_STEPS", 2)
    trainer = Trainer(
        TrainConfig(**{**TINY, "steps": 4, "adv_weight": 0.0}), tmp_path, "cpu", source=PoisonedBatch(bad)
    )
    if diverges:
        with pytest.raises(TrainingDiverged, match="in 2 steps in a row"):
            trainer.fit()
    else:
        trainer.fit()
        assert trainer.step == 4


def test_the_default_recipe_trains_without_downloads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from napari_deblurgan.gan.training.losses import content_loss

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))  # no VGG19 anywhere
    monkeypatch.delenv("NAPARI_DEBLURGAN_VGG19", raising=False)
    loss = content_loss(TrainConfig().content_loss)
    x = torch.rand(1, 3, 8, 8)
    assert float(loss(x, x)) < 1e-2 < float(loss(x, -x))


def test_a_gopro_root_with_its_test_scenes_is_refused_for_training(tmp_path: Path) -> None:
    from napari_deblurgan.gan.io.images import write_image
    from napari_deblurgan.gan.training.train import folder_pairs

    for split in ("train", "test"):
        for kind in ("blur", "sharp"):
            (tmp_path / split / "GOPR0001" / kind).mkdir(parents=True)
            write_image(tmp_path / split / "GOPR0001" / kind / "000001.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"the test scenes would be trained on; pass .*train"):
        folder_pairs(TrainConfig.from_dict({"preset": "fast", "data": str(tmp_path)}))
    config = TrainConfig.from_dict({"preset": "fast", "data": str(tmp_path / "train")})
    assert [b.parent.parent.name for b, _ in folder_pairs(config)] == ["GOPR0001"]


def test_sharp_images_of_a_corpus_are_its_train_split_only(tmp_path: Path) -> None:
    import skimage.data

    from napari_deblurgan.gan.io.images import write_image
    from napari_deblurgan.gan.training.train import build_source

    photo = skimage.data.astronaut()[:64, :64]
    for i, where in enumerate(("train/a.png", "val/b.png", "test/c.png", ".debs/x/pkg/d.png", "train/.cache/e.png")):
        (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
        write_image(tmp_path / where, (photo // (i + 1)).astype(np.uint8))
    source = build_source(TrainConfig.from_dict({"preset": "fast", "data": str(tmp_path), "crop": 32}))
    assert len(source.images) == 1
    np.testing.assert_allclose(source.images[0], photo / 255, atol=1e-6)
    # a folder of photos without splits is all for training, its hidden folders excepted
    source = build_source(TrainConfig.from_dict({"preset": "fast", "data": str(tmp_path / "train"), "crop": 32}))
    assert len(source.images) == 1


def test_a_folder_of_sharp_images_names_a_file_that_is_not_one_image(tmp_path: Path) -> None:
    import skimage.data
    import tifffile

    from napari_deblurgan.gan.io.images import write_image
    from napari_deblurgan.gan.training.train import build_source

    sharp = tmp_path / "sharp"
    sharp.mkdir()
    write_image(sharp / "a.png", skimage.data.astronaut()[:64, :64])
    tifffile.imwrite(sharp / "stack.tif", np.zeros((2, 64, 64), np.uint8))
    config = TrainConfig.from_dict({"preset": "fast", "data": str(sharp), "crop": 32})
    with pytest.raises(ValueError, match=r"stack\.tif is a multi-page TIFF of 2 images"):
        build_source(config)
    (sharp / "stack.tif").unlink()
    tifffile.imwrite(
        sharp / "two.tif", np.zeros((64, 64, 2), np.uint8), photometric="minisblack", planarconfig="contig"
    )
    with pytest.raises(ValueError, match=r"two\.tif"):
        build_source(config)
    (sharp / "two.tif").unlink()
    write_image(
        sharp / "gray_alpha.png", np.stack([skimage.data.camera()[:64, :64], np.full((64, 64), 255, np.uint8)], -1)
    )
    build_source(config)  # gray + alpha: its gray plane


def test_the_trainer_never_appends_to_a_metrics_csv_that_no_run_wrote(tmp_path: Path) -> None:
    cfg = TrainConfig(**{**TINY, "steps": 1, "adv_weight": 0.0})
    for resume in (False, True):
        run = tmp_path / f"resume={resume}"
        run.mkdir()
        (run / "metrics.csv").write_text("experiment,accuracy\n")  # the user's own table
        with pytest.raises(FileExistsError, match=r"metrics\.csv was not written by a napari-deblurgan run"):
            Trainer(cfg, run, device="cpu", resume=resume, source=FixedBatch())
        assert (run / "metrics.csv").read_text() == "experiment,accuracy\n"
    empty = tmp_path / "empty"  # left by a run killed as it began: ours, without a header yet
    empty.mkdir()
    (empty / "metrics.csv").touch()
    Trainer(cfg, empty, device="cpu", source=FixedBatch()).fit()
    assert (empty / "metrics.csv").read_text().startswith("step,time,lr")


def test_a_crop_too_small_for_the_critic_is_refused_on_load() -> None:
    import torch

    from napari_deblurgan.gan.model.critic import CriticConfig, PatchCritic

    with pytest.raises(ValueError, match=r"crop 16 is too small for the critic's 3 layers: use a crop of at least 24"):
        TrainConfig.from_dict({"preset": "fast", "crop": 16, "adv_weight": 0.001, "adv_start": 5000})
    with pytest.raises(ValueError, match="at least 384"):
        TrainConfig.from_dict({"preset": "fast", "crop": 256, "adv_weight": 0.01, "critic": {"n_layers": 7}})
    TrainConfig.from_dict({"preset": "fast", "crop": 16, "adv_weight": 0.0})  # no critic: no limit
    config = TrainConfig.from_dict({"preset": "fast", "crop": 24, "adv_weight": 0.001})
    assert PatchCritic(CriticConfig.from_dict(config.critic))(torch.zeros(2, 3, 24, 24)).numel() > 0
