"""Fuzzing the parsers mnistlab owns: only the documented clean errors may come out."""

from __future__ import annotations

import gzip
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnistlab.config import TrainConfig
from mnistlab.data import read_idx
from mnistlab.errors import ConfigError, DataError, MnistlabError
from mnistlab.experiments.suites import parse_suite

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=12),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
config_keys = st.sampled_from([*TrainConfig().to_dict().keys(), "bogus", "model_options"])


@SETTINGS
@given(st.dictionaries(config_keys, toml_values, max_size=6))
def test_config_from_random_mapping_only_raises_config_error(data):
    try:
        TrainConfig.from_dict(data)
    except ConfigError:
        pass


suite_documents = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=8), toml_scalars)},
    optional={
        "base": st.dictionaries(config_keys, toml_values, max_size=4),
        "groups": st.lists(
            st.dictionaries(
                st.sampled_from(["name", "set", "variants", "axes", "axis_labels", "other"]),
                toml_values,
                max_size=5,
            ),
            max_size=3,
        ),
        "extra": toml_values,
    },
)


@SETTINGS
@given(suite_documents)
def test_suite_parser_only_raises_config_error(document):
    try:
        parse_suite(document, source="fuzz.toml")
    except ConfigError:
        pass


@SETTINGS
@given(st.text(max_size=300))
def test_suite_toml_text_never_crashes(text):
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        parse_suite(document, source="fuzz.toml")
    except ConfigError:
        pass


# plausible headers (magic 0x0000, dtype, ndim, sizes) followed by a random payload
idx_headers = st.builds(
    lambda dtype, dims, sizes, payload: (
        bytes([0, 0, dtype, dims]) + b"".join(s.to_bytes(4, "big") for s in sizes) + payload
    ),
    st.sampled_from([8, 9, 13]),
    st.integers(0, 4),
    st.lists(st.integers(0, 40), max_size=4),
    st.binary(max_size=400),
)


@SETTINGS
@given(st.one_of(st.binary(max_size=600), idx_headers), st.booleans())
def test_idx_reader_only_raises_data_error(tmp_path_factory, payload, compress):
    path = tmp_path_factory.mktemp("idx") / ("f.gz" if compress else "f")
    path.write_bytes(gzip.compress(payload) if compress else payload)
    try:
        array = read_idx(path)
    except DataError:
        return
    assert array.size * array.itemsize <= len(payload)


@SETTINGS
@given(st.binary(max_size=2000))
def test_image_preprocessing_of_random_bytes_only_raises_clean_errors(payload):
    from mnistlab.inference.preprocess import preprocess_image

    try:
        digit = preprocess_image(payload)
    except MnistlabError:
        return
    assert digit.shape == (28, 28)


@SETTINGS
@given(
    st.integers(1, 64),
    st.integers(1, 64),
    st.sampled_from(["L", "RGB", "RGBA", "1", "P"]),
    st.sampled_from(["PNG", "BMP", "GIF", "JPEG"]),
    st.randoms(use_true_random=False),
)
@pytest.mark.long
def test_image_preprocessing_of_random_images(width, height, mode, fmt, rnd):
    import io

    from PIL import Image

    from mnistlab.inference.preprocess import preprocess_image

    image = Image.frombytes(
        "L", (width, height), bytes(rnd.getrandbits(8) for _ in range(width * height))
    )
    if fmt == "JPEG" and mode in ("RGBA", "P", "1"):
        mode = "RGB"  # JPEG cannot store these modes
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, format=fmt)
    try:
        digit = preprocess_image(buffer.getvalue())
    except MnistlabError:
        return  # e.g. a blank image: refused with a one-line message
    assert digit.shape == (28, 28) and digit.dtype.name == "uint8"
