"""Shared, session-scoped fixtures of the test suite.

The expensive objects -- phantoms and segmentations fitted on them -- are made once per
test process (one per pytest-xdist worker) and shared by every test file that asks for
them. Treat them as read-only: a test that changes a signal works on ``.deepcopy()``.
"""

from __future__ import annotations

import pytest

from _synth import synthetic_cube


@pytest.fixture(scope="session")
def sulfide_phantom():
    """The notebooks' 6-cation sulfide phantom: 128 x 128 px of 40 nm, 200 kV, seed 0."""
    from stemseg import simulate

    return simulate.phantom("sulfide-6cation", random_state=0)


@pytest.fixture(scope="session")
def sulfide_64():
    """The 6-cation sulfide phantom at 64 x 64 px, seed 0 (fast stage and widget tests)."""
    from stemseg import simulate

    return simulate.phantom("sulfide-6cation", shape=(64, 64), random_state=0)


@pytest.fixture(scope="session")
def particles_phantom():
    """The uniform 7-cation nanoparticle phantom (128 x 128 px of 1 nm), seed 0."""
    from stemseg import simulate

    return simulate.phantom("nanoparticles-7cation", random_state=0)


@pytest.fixture(scope="session")
def sulfide_gmm6(sulfide_phantom):
    """Workflow 1 as the notebooks run it: 6 clusters (four sulfides, resin, boundaries)."""
    from stemseg import workflows

    return workflows.gmm(sulfide_phantom, n_clusters=6, random_state=0)


@pytest.fixture(scope="session")
def sulfide_hdbscan(sulfide_phantom):
    """Workflow 2 as the notebooks run it: min_cluster_size 200 px, bin 2."""
    from stemseg import workflows

    return workflows.hdbscan(sulfide_phantom, random_state=0)


@pytest.fixture(scope="session")
def synth():
    """(EDS signal, truth labels) of the 64 x 64 four-phase synthetic cube (tests/_synth.py)."""
    return synthetic_cube()


@pytest.fixture(scope="session")
def synth_32():
    """(EDS signal, truth labels): the synthetic cube at 32 x 32 px and 256 channels."""
    return synthetic_cube(shape=(32, 32), n_channels=256)

