"""Episode sampling: properties, reproducibility, options, manifests."""
import pytest

from bench.core.errors import BenchError
from bench.data.catalog import open_dataset
from bench.data.episodes import (
    EpisodeSpec,
    check_manifest,
    manifest_hash,
    read_manifest,
    sample_episodes,
    write_manifest,
)


@pytest.fixture(scope="module")
def dataset(voc_root):
    return open_dataset("pascal5i", voc_root, voc_root / "lists")


def images_with_class(dataset, split):
    out = {}
    for image_id, class_id in dataset.pairs(split, "test"):
        out.setdefault(class_id, set()).add(image_id)
    return out


@pytest.mark.parametrize("split", [1, 3])
@pytest.mark.parametrize("shot", [1, 3])
def test_episodes_respect_the_protocol(dataset, split, shot):
    manifest = sample_episodes(dataset, EpisodeSpec(split, shot, seed=0, episodes=60))
    by_class = images_with_class(dataset, split)
    assert len(manifest) == 60 and list(manifest.episode) == list(range(60))
    for row in manifest.itertuples():
        supports = row.supports.split(" ")
        assert row.class_id in dataset.test_classes(split)
        assert row.query in by_class[row.class_id]
        assert len(supports) == shot and len(set(supports)) == shot
        assert row.query not in supports
        assert set(supports) <= by_class[row.class_id]


def test_same_seed_same_episodes_other_seed_differs(dataset):
    a = sample_episodes(dataset, EpisodeSpec(1, 1, seed=0, episodes=50))
    b = sample_episodes(dataset, EpisodeSpec(1, 1, seed=0, episodes=50))
    c = sample_episodes(dataset, EpisodeSpec(1, 1, seed=1, episodes=50))
    assert manifest_hash(a) == manifest_hash(b)
    assert manifest_hash(a) != manifest_hash(c)
    assert list(a["query"]) != list(c["query"])


def test_one_and_k_shot_share_queries(dataset):
    one = sample_episodes(dataset, EpisodeSpec(1, 1, seed=2, episodes=40))
    three = sample_episodes(dataset, EpisodeSpec(1, 3, seed=2, episodes=40))
    assert list(one["query"]) == list(three["query"])
    assert list(one["class_id"]) == list(three["class_id"])


def test_list_sampling_covers_every_pair_before_repeating(dataset):
    pairs = dataset.pairs(1, "test")
    manifest = sample_episodes(dataset, EpisodeSpec(1, 1, seed=0, episodes=len(pairs)))
    assert sorted(zip(manifest["query"], manifest["class_id"])) == sorted(pairs)


def test_uniform_sampling_balances_classes(dataset):
    manifest = sample_episodes(dataset, EpisodeSpec(1, 1, seed=0, episodes=2000, class_sampling="uniform"))
    freq = manifest["class_id"].value_counts(normalize=True)
    assert set(freq.index) == set(range(1, 6))
    assert (abs(freq - 0.2) < 0.04).all()


def test_min_object_size_filter_drops_small_objects(dataset):
    threshold = 80
    manifest = sample_episodes(dataset, EpisodeSpec(1, 1, seed=0, episodes=100, min_object_pixels=threshold))
    for row in manifest.itertuples():
        for image_id in [row.query, row.supports]:
            assert dataset.class_pixel_count(image_id, row.class_id) >= threshold
    unfiltered = sample_episodes(dataset, EpisodeSpec(1, 1, seed=0, episodes=100))
    small = [r for r in unfiltered.itertuples() if dataset.class_pixel_count(r.query, r.class_id) < threshold]
    assert small, "the fixture should contain objects below the threshold"


def test_identical_input_uses_the_query_as_support(dataset):
    manifest = sample_episodes(dataset, EpisodeSpec(1, 1, seed=0, episodes=20, identical_input=True))
    assert (manifest["query"] == manifest["supports"]).all()
    with pytest.raises(BenchError, match="1-shot only"):
        sample_episodes(dataset, EpisodeSpec(1, 5, seed=0, episodes=20, identical_input=True))


def test_too_few_images_for_k_shot_names_the_classes(dataset):
    with pytest.raises(BenchError, match=r"5-shot episodes need 6 usable images per class; split 1 has fewer for: aeroplane \(\d\)"):
        sample_episodes(dataset, EpisodeSpec(1, 5, seed=0, episodes=10))


def test_bad_shot_and_split(dataset):
    with pytest.raises(BenchError, match="shots must be >= 1"):
        sample_episodes(dataset, EpisodeSpec(1, 0, seed=0))
    with pytest.raises(BenchError, match="split 0 is outside 1..4"):
        sample_episodes(dataset, EpisodeSpec(0, 1, seed=0))


def test_manifest_round_trip_and_check(dataset, tmp_path):
    manifest = sample_episodes(dataset, EpisodeSpec(2, 3, seed=1, episodes=30))
    path = tmp_path / "m.csv"
    digest = write_manifest(manifest, path)
    back = read_manifest(path)
    assert manifest_hash(back) == digest == manifest_hash(manifest)
    check_manifest(dataset, back, "m.csv")
    back.loc[0, "supports"] = "val_01_0 val_01_1 val_01_2"
    with pytest.raises(BenchError, match="episode 0 uses .* not in the test list of split 2"):
        check_manifest(dataset, back, "m.csv")


def test_bad_manifest_files(tmp_path):
    (tmp_path / "a.csv").write_text("episode,class_id\n0,1\n")
    with pytest.raises(BenchError, match="lacks columns: split, shot, seed, query, supports"):
        read_manifest(tmp_path / "a.csv")
    with pytest.raises(BenchError, match="episode manifest not found"):
        read_manifest(tmp_path / "none.csv")
