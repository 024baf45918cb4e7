"""Fixtures of the criteria tests."""

import pytest
from criteria_helpers import residual_model


@pytest.fixture
def resnet():
    return residual_model()


@pytest.fixture
def groups_of():
    from keras_neuronprune import channel_groups

    def build(model):
        return [g for g in channel_groups(model) if g.prunable]

    return build
