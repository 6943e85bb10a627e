"""Selecting repositories (selectors, watch list, names known without listing) and images (tags,
newest N, untagged)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from vulnwatch.model import Image
from vulnwatch.targets import Selector, plan_repositories, select_images

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
REPOS = ["base", "payments/api", "team/app", "team/web", "team/sub/deep", "tools/ci"]


def sel(name="*", include=("*",), exclude=(), newest=None, untagged=False) -> Selector:
    return Selector(name=name, include=tuple(include), exclude=tuple(exclude), newest=newest, untagged=untagged)


def img(digest_char: str, *tags: str, hours: float | None = 0, repo="team/app") -> Image:
    return Image(registry="prod", repository=repo, digest="sha256:" + digest_char * 64, tags=tuple(sorted(tags)),
                 pushed_at=None if hours is None else T0 + timedelta(hours=hours))


def select_repositories(names, selectors, watch_list=None):
    """What is watched when the registry lists ``names``."""
    return list(plan_repositories(selectors, watch_list).select(names))


def names(selected):
    return [n for n, _ in selected]


# -- repositories -----------------------------------------------------------------------------

def test_no_selectors_and_no_watch_list_takes_everything():
    got = select_repositories(reversed(REPOS), [])
    assert names(got) == sorted(REPOS)
    assert all(s.name == "*" for _, s in got)


def test_glob_matches_across_slashes_and_unmatched_are_left_out():
    got = select_repositories(REPOS, [sel("team/*")])
    assert names(got) == ["team/app", "team/sub/deep", "team/web"]
    assert names(select_repositories(REPOS, [sel("team/?pp"), sel("base")])) == ["base", "team/app"]


def test_exact_selector_wins_over_earlier_glob_and_first_glob_wins():
    exact = sel("team/app", newest=1)
    first, second = sel("team/*", newest=5), sel("*", newest=9)
    got = dict(select_repositories(REPOS, [first, second, exact]))
    assert got["team/app"] is exact
    assert got["team/web"] is first
    assert got["base"] is second


def test_watch_list_narrows_to_named_repositories():
    got = select_repositories(REPOS, [], ["tools/ci", "team/app"])
    assert names(got) == ["team/app", "tools/ci"]


def test_watch_list_and_selectors_narrow_together():
    got = select_repositories(REPOS, [sel("team/*")], ["team/app", "base"])
    assert names(got) == ["team/app"]


def test_empty_watch_list_watches_nothing():
    assert select_repositories(REPOS, [], []) == []


def test_exact_names_need_no_listing_and_globs_do():
    plan = plan_repositories([sel("team/*"), sel("gone/app"), sel("base")])
    assert plan.needs_listing and [s.name for s in plan.globs] == ["team/*"]
    assert names(plan.direct) == ["base", "gone/app"]              # asked for directly, listed or not
    assert names(plan.select(REPOS)) == ["base", "gone/app", "team/app", "team/sub/deep", "team/web"]
    assert not plan_repositories([sel("base"), sel("team/app")]).needs_listing
    assert names(plan_repositories([sel("nope/*")]).select(REPOS)) == []   # a glob matching nothing: nothing


def test_a_watch_list_names_everything_no_listing_needed():
    plan = plan_repositories([sel("team/*", newest=2), sel("base")], ["base", "deleted", "team/app", "tools/ci"])
    assert not plan.needs_listing
    assert [(n, s.name) for n, s in plan.direct] == [("base", "base"), ("team/app", "team/*")]
    assert plan.select(["whatever/else"]) == plan.direct       # a listing adds nothing to a watch list
    assert names(plan_repositories([], ["deleted"]).direct) == ["deleted"]     # the registry will say "not found"


# -- images -----------------------------------------------------------------------------------

def test_any_tag_included_and_not_excluded_selects_the_image():
    images = [img("a", "1.0", "1.0-dev"), img("b", "2.0-dev"), img("c", "sha-abc"), img("d", "latest")]
    got = select_images(images, sel(exclude=["*-dev", "sha-*"]))
    assert {i.digest[7] for i in got} == {"a", "d"}
    # tags of a selected image are kept whole
    assert next(i for i in got if i.digest[7] == "a").tags == ("1.0", "1.0-dev")


def test_include_patterns():
    images = [img("a", "v1.2"), img("b", "latest"), img("c", "nightly"), img("d", "V1")]
    got = select_images(images, sel(include=["v[0-9]*", "latest"]))
    assert {i.digest[7] for i in got} == {"a", "b"}  # case-sensitive: V1 does not match v[0-9]*


def test_untagged_only_when_asked_and_ignores_tag_filters():
    images = [img("a", "1.0"), img("b"), img("c", "dev")]
    assert {i.digest[7] for i in select_images(images, sel(include=["1.*"]))} == {"a"}
    got = select_images(images, sel(include=["1.*"], untagged=True))
    assert {i.digest[7] for i in got} == {"a", "b"}


def test_newest_n_by_push_time_after_tag_filters_unknown_times_last():
    images = [img("a", "1", hours=1), img("b", "2", hours=5), img("c", "3-dev", hours=9),
              img("d", "4", hours=None), img("e", "5", hours=3)]
    got = select_images(images, sel(exclude=["*-dev"], newest=2))
    assert [i.digest[7] for i in got] == ["b", "e"]
    every = select_images(images, sel(exclude=["*-dev"]))
    assert [i.digest[7] for i in every] == ["b", "e", "a", "d"]
    assert [i.digest[7] for i in select_images(images, sel(newest=10))] == ["c", "b", "e", "a", "d"]


def test_order_is_deterministic_with_ties_and_input_order():
    images = [img("c", "x", hours=1), img("a", "y", hours=1), img("b", "z", hours=None), img("d", "w", hours=None)]
    first = select_images(images, sel())
    assert [i.digest[7] for i in first] == ["a", "c", "b", "d"]
    assert select_images(reversed(images), sel()) == first


def test_naive_and_aware_push_times_compare():
    naive = Image("prod", "r", "sha256:" + "a" * 64, ("x",), pushed_at=datetime(2024, 5, 2))
    aware = img("b", "y", hours=0)  # 2024-05-01 UTC
    assert [i.digest[7] for i in select_images([aware, naive], sel(newest=1))] == ["a"]


def test_duplicate_entries_of_one_digest_are_merged():
    # some registries (and moto) list a digest once per tag
    images = [img("a", "1.0-dev", hours=1), img("a", "1.0", hours=2), img("b", "x-dev")]
    got = select_images(images, sel(exclude=["*-dev"]))
    assert len(got) == 1
    assert got[0].tags == ("1.0", "1.0-dev")
    assert got[0].pushed_at == T0 + timedelta(hours=2)
