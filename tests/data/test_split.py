from pathlib import Path

from multifield.data.split import hash_bucket, split_by_hash

REPO = Path(__file__).resolve().parents[2]


def test_split_is_stable_and_near_the_fraction():
    ids = [f"movie:{i}" for i in range(5000)]
    train, valid = split_by_hash(ids, 0.1)
    assert sorted(train + valid) == list(range(5000))
    assert 400 < len(valid) < 600
    # The side of an id does not depend on the other ids or their order.
    _, valid_reversed = split_by_hash(list(reversed(ids)), 0.1)
    assert {ids[i] for i in valid} == {list(reversed(ids))[i] for i in valid_reversed}


def test_bucket_matches_the_fixed_movie_split_rule():
    # The bundled test split was made with int(sha256(id)) % 10 == 0.
    test_ids = (REPO / "data" / "test_ids.txt").read_text().split()[:50]
    assert all(hash_bucket(movie_id, 10) == 0 for movie_id in test_ids)
