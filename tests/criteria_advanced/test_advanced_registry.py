import keras
import numpy as np
import pytest
from advanced_models import make_data
from advanced_models import make_densenet
from advanced_models import make_resnet
from advanced_models import randomize_bn

from keras_neuronprune import criteria
from keras_neuronprune.callbacks import UpdatePruning
from keras_neuronprune.pruning import prune_structured
from keras_neuronprune.pruning import strip_pruning

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
ALIASES = {
    "thinet": "ThiNet",
    "nisp": "NISP",
    "chip": "CHIP",
    "sosp": "SOSP",
    "singe": "SInGE",
    "hessian_spectral": "HessianSpectral",
}
SMALL = {
    "thinet": {"min_samples": 8},
    "nisp": {"min_samples": 8},
    "chip": {"min_samples": 8},
    "sosp": {"min_samples": 8},
    "singe": {"min_samples": 8, "steps": 2},
    "hessian_spectral": {"min_samples": 8},
}


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_alias_and_config_round_trip(alias):
    criterion = criteria.get(alias)
    assert type(criterion).__name__ == ALIASES[alias]
    assert criterion.requires_data
    config = criteria.serialize(type(criterion)(**SMALL[alias]))
    restored = criteria.deserialize(config)
    assert restored.get_config() == type(criterion)(**SMALL[alias]).get_config()


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_prune_structured_with_advanced_criterion(alias):
    build = make_densenet if alias in ("chip", "nisp") else make_resnet
    model = randomize_bn(build())
    data = make_data(n=16)
    criterion = type(criteria.get(alias))(**SMALL[alias])
    pruned = prune_structured(
        model, criterion=criterion, pruning_ratio=0.5, data=data, loss=LOSS
    )
    pruned.compile(optimizer="sgd", loss=LOSS)
    x = np.concatenate([b[0] for b in data])
    y = np.concatenate([b[1] for b in data])
    pruned.fit(
        x, y, batch_size=16, epochs=1, verbose=0, callbacks=[UpdatePruning()]
    )
    final = strip_pruning(pruned)
    assert final.count_params() < model.count_params()
    assert final.predict_on_batch(x[:2]).shape == (2, 3)


def test_prune_structured_requires_data():
    with pytest.raises(ValueError, match="data"):
        prune_structured(make_resnet(), criterion="chip", pruning_ratio=0.5)


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_non_finite_weights_stop_scoring_with_the_group_name(alias):
    from advanced_models import groups_of
    from advanced_models import make_chain

    from keras_neuronprune.criteria.base_criterion import ScoringContext

    model = make_chain()
    kernel = model.get_layer("c2").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    criterion = type(criteria.get(alias))(**SMALL[alias])
    context = ScoringContext(model, groups_of(model), make_data(n=16), LOSS)
    with pytest.raises(ValueError, match=r"non-finite .* group '(c1|c2)'"):
        criterion.score(context)
