"""The metric maths against cases with known answers."""

import math

import pytest
import torch
from torch import nn

from ganforge.eval import metrics


def exact_gaussian_sample(n: int, mean: torch.Tensor, std: torch.Tensor, seed: int) -> torch.Tensor:
    """n points whose sample mean is exactly ``mean`` and unbiased sample covariance exactly
    ``diag(std²)``: whitened noise, rescaled."""
    z = torch.randn(
        n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    z = z - z.mean(0)
    cholesky = torch.linalg.cholesky(z.T @ z / (n - 1))
    white = torch.linalg.solve_triangular(cholesky, z.T, upper=False).T
    return white * std + mean


def test_fid_of_identical_sets_is_zero():
    features = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    fid = metrics.frechet_metric(8)
    fid.update(features, real=True)
    fid.update(features, real=False)
    assert abs(fid.compute().item()) < 1e-6


def test_fid_of_two_gaussians_matches_the_closed_form():
    """FID(N(μ1, Σ1), N(μ2, Σ2)) = |μ1 − μ2|² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^½); for diagonal
    covariances the trace term is Σ (σ1 − σ2)²."""
    mean1, std1 = torch.tensor([0.0, 1.0, -2.0, 0.5]), torch.tensor([1.0, 2.0, 0.5, 1.5])
    mean2, std2 = torch.tensor([1.0, 1.0, 0.0, -0.5]), torch.tensor([0.5, 2.0, 1.5, 3.0])
    expected = ((mean1 - mean2) ** 2).sum() + ((std1 - std2) ** 2).sum()
    fid = metrics.frechet_metric(4)
    fid.update(exact_gaussian_sample(4000, mean1, std1, seed=1), real=True)
    fid.update(exact_gaussian_sample(3000, mean2, std2, seed=2), real=False)
    assert fid.compute().item() == pytest.approx(expected.item(), rel=1e-4)


def test_fid_reference_statistics_survive_reset():
    fid = metrics.frechet_metric(2)
    real = exact_gaussian_sample(1000, torch.zeros(2), torch.ones(2), seed=3)
    fid.update(real, real=True)
    fid.update(real + 3, real=False)
    first = fid.compute().item()
    fid.reset()
    fid.update(real + 3, real=False)
    assert fid.compute().item() == pytest.approx(first)
    assert first == pytest.approx(18.0, rel=1e-6)  # |(3, 3)|², same covariance


def naive_prdc(real: list[float], fake: list[float], k: int) -> dict[str, float]:
    """PRDC for 1-D points, written with plain loops from the papers' definitions."""

    def kth(points: list[float], i: int) -> float:
        return sorted(abs(points[i] - p) for j, p in enumerate(points) if j != i)[k - 1]

    real_r = [kth(real, i) for i in range(len(real))]
    fake_r = [kth(fake, j) for j in range(len(fake))]
    precision = sum(any(abs(f - r) < real_r[i] for i, r in enumerate(real)) for f in fake)
    recall = sum(any(abs(r - f) < fake_r[j] for j, f in enumerate(fake)) for r in real)
    density = sum(abs(f - r) < real_r[i] for f in fake for i, r in enumerate(real))
    coverage = sum(min(abs(r - f) for f in fake) < real_r[i] for i, r in enumerate(real))
    return {
        "precision": precision / len(fake),
        "recall": recall / len(real),
        "density": density / (k * len(fake)),
        "coverage": coverage / len(real),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prdc_matches_a_naive_implementation(seed):
    g = torch.Generator().manual_seed(seed)
    real = (torch.randn(40, generator=g) * 2).tolist()
    fake = (torch.randn(30, generator=g) + 1.5).tolist()
    got = metrics.precision_recall_density_coverage(
        torch.tensor(real)[:, None], torch.tensor(fake)[:, None], k=3
    )
    expected = naive_prdc(real, fake, k=3)
    assert got == pytest.approx(expected)


def test_prdc_on_constructed_sets():
    grid = torch.arange(20, dtype=torch.float64)[:, None]
    # Fakes that are exactly the real points: every fake is inside a real ball and vice versa.
    same = metrics.precision_recall_density_coverage(grid, grid.clone(), k=3)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    # Half the fakes copy real points, half sit far away: precision 1/2.
    half = torch.cat([grid[:10], grid[:10] + 1000])
    assert metrics.precision_recall_density_coverage(grid, half, k=3)["precision"] == 0.5
    # Fakes far from everything: all four are 0.
    far = metrics.precision_recall_density_coverage(grid, grid + 1000, k=3)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_class_coverage_on_labelled_inputs():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 19 + [3] * 1)
    probabilities = nn.functional.one_hot(labels, 4).double()
    result = metrics.class_coverage(probabilities, ["a", "b", "c", "d"])
    assert result["class_histogram"] == {"a": 0.5, "b": 0.3, "c": 0.19, "d": 0.01}
    assert result["classes_covered"] == 3  # d holds 1% < 2%
    expected_kl = sum(p * math.log(p * 4) for p in (0.5, 0.3, 0.19, 0.01))
    assert result["kl_uniform"] == pytest.approx(expected_kl)
    uniform = metrics.class_coverage(torch.eye(4).repeat(5, 1), list("abcd"))
    assert uniform["kl_uniform"] == pytest.approx(0.0) and uniform["classes_covered"] == 4


def test_memorisation_ratio():
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(300, 5, generator=g), torch.randn(100, 5, generator=g)
    assert metrics.memorisation_ratio(train[:100], test, train) == 0.0  # exact copies
    fresh = torch.randn(100, 5, generator=g)
    assert 0.7 < metrics.memorisation_ratio(fresh, test, train) < 1.4
    assert metrics.nearest_distances(
        torch.tensor([[0.0], [5.0]]), torch.tensor([[1.0], [4.5]])
    ).tolist() == [1.0, 0.5]


def test_seeded_restores_the_callers_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with metrics.seeded(7):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)
    with metrics.seeded(7):
        assert torch.equal(torch.rand(3), inside)


def nearest_distances_norms_first(
    queries: torch.Tensor, references: torch.Tensor, chunk: int, block: int
) -> torch.Tensor:
    """The blocked search with ``|q|²`` added to every distance before the minimum, as the
    search did before it added it to the minimum."""
    references = references.float()
    squared_norms = references.square().sum(dim=1)[None, :]
    nearest = []
    for rows in queries.split(chunk):
        squared = torch.cat(
            [
                torch.addmm(squared_norms[:, part], rows, references[part].T, alpha=-2)
                for part in (slice(i, i + block) for i in range(0, len(references), block))
            ],
            dim=1,
        )
        squared += rows.square().sum(dim=1, keepdim=True)
        nearest.append(squared.min(dim=1).values.clamp_min(0).sqrt())
    return torch.cat(nearest)


@pytest.mark.parametrize(("chunk", "block"), [(7, 5), (40, 1000), (1000, 64)])
def test_nearest_distances_add_the_query_norms_after_the_minimum_to_the_same_bits(chunk, block):
    g = torch.Generator().manual_seed(0)
    references = torch.rand(301, 16, generator=g) * 4
    queries = torch.cat([torch.rand(90, 16, generator=g) * 4, references[:30]])
    got = metrics.nearest_distances(queries, references, chunk=chunk, block=block)
    assert torch.equal(got, nearest_distances_norms_first(queries, references, chunk, block))
    # Blocks of other shapes round the products differently, by float32 noise only.
    one_matrix = nearest_distances_norms_first(queries, references, len(queries), len(references))
    assert torch.allclose(got[:90], one_matrix[:90], rtol=1e-5)
    assert got[90:].max() < 1e-2  # the copies: 0, give or take rounding


def test_kth_neighbour_distances_are_kthvalues():
    points = torch.randn(300, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = torch.cdist(points, points).kthvalue(4, dim=1).values
    assert torch.equal(metrics.kth_neighbour_distances(points, 3), expected)


def test_prdc_with_the_real_radii_given_is_prdc():
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(60, 4, generator=g), torch.randn(50, 4, generator=g) + 0.3
    radii = metrics.kth_neighbour_distances(real.double(), 3)
    assert metrics.precision_recall_density_coverage(
        real, fake, 3, real_radii=radii
    ) == metrics.precision_recall_density_coverage(real, fake, 3)
