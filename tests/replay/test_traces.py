"""Trace readers: both formats, reshaping, and errors that name the row and field."""

from __future__ import annotations

import json

import pytest

from dynamo_scaling.traces import (Request, TraceError, prefix_reuse, read_trace, scale_rate, scale_time, window,
                                   write_mooncake)


def test_both_shared_traces_read(traces_dir):
    azure = read_trace(traces_dir / "azure_llm_2023_code.csv")
    moon = read_trace(traces_dir / "mooncake_synthetic.jsonl")
    assert len(azure) == 8819 and len(moon) == 3993
    assert azure[0].timestamp_ms == 0.0 and all(a.timestamp_ms <= b.timestamp_ms for a, b in zip(azure, azure[1:]))
    # Azure rows get non-shared hash ids, one per 512 tokens
    assert len(azure[0].hash_ids) == -(-azure[0].input_length // 512)
    assert not set(azure[0].hash_ids) & set(azure[1].hash_ids)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 2}\n{"timestamp": 1, "input_length": 5}\n',
         "bad.jsonl:2: missing field 'output_length'"),
        ("bad.jsonl", '{"timestamp": 0, "input_length": "x", "output_length": 2}\n', "bad.jsonl:1: field 'input_length'"),
        ("bad.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 2}\n{oops\n', "bad.jsonl:2: not valid JSON"),
        ("bad.jsonl", '{"timestamp": -4, "input_length": 5, "output_length": 2}\n', "bad.jsonl:1: field 'timestamp'"),
        ("bad.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.97,12,3\n2023-11-16 18:17:04,0,3\n",
         "bad.csv:3: field 'ContextTokens'"),
        ("bad.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,12,3\n", "bad.csv:2: field 'TIMESTAMP'"),
        ("bad.csv", "TIMESTAMP,Context\n2023-11-16 18:17:03,1\n", "header must contain"),
        ("empty.jsonl", "\n", "cannot tell the format"),
    ],
)
def test_malformed_input_names_row_and_field(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TraceError) as err:
        read_trace(path)
    assert message in str(err.value)


def test_azure_timestamps_with_an_offset_or_a_short_fraction_read(tmp_path):
    """The 2024 release of the Azure trace writes an offset (+00:00); fractions come with 1 to 7
    digits. Times without an offset are read as UTC, whatever the machine's zone: a trace that
    crosses a daylight-saving change keeps its spacing."""
    path = tmp_path / "az2024.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2024-05-10 00:00:00.009930+00:00,4808,10\n"
                    "2024-05-10 00:00:01.5+00:00,100,7\n"
                    "2024-05-10 02:00:01.5+02:00,100,7\n")
    assert [r.timestamp_ms for r in read_trace(path)] == pytest.approx([0.0, 1490.07, 1490.07])
    naive = tmp_path / "naive.csv"
    naive.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     "2023-11-16 18:15:46.6805900,374,44\n"
                     "2023-11-16 18:15:47.68059,10,1\n"
                     "2023-11-16 18:15:46.6805900Z,5,1\n")  # the same instant, given in UTC
    assert [r.timestamp_ms for r in read_trace(naive)] == pytest.approx([0.0, 0.0, 1000.0])


def test_rate_scale_keeps_duration_and_multiplies_count(traces_dir):
    base = window(read_trace(traces_dir / "mooncake_synthetic.jsonl"), 0, 300)
    scaled = scale_rate(base, 3.0, seed=7)
    assert len(scaled) == 3 * len(base)
    assert abs(scaled[-1].timestamp_ms - base[-1].timestamp_ms) < 1000
    assert scale_rate(base, 3.0, seed=7) == scaled  # seeded
    half = scale_rate(base, 0.5, seed=1)
    assert 0.35 * len(base) < len(half) < 0.65 * len(base)
    assert scale_time(base, 2.0)[-1].timestamp_ms == pytest.approx(base[-1].timestamp_ms / 2)
    with pytest.raises(TraceError):
        scale_rate(base, 0)


def test_written_trace_reads_back(tmp_path, traces_dir):
    base = read_trace(traces_dir / "azure_llm_2023_code.csv")[:50]
    back = read_trace(write_mooncake(base, tmp_path / "t.jsonl"))
    assert [(r.input_length, r.output_length) for r in back] == [(r.input_length, r.output_length) for r in base]
    assert json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])["hash_ids"] == list(base[0].hash_ids)


def test_prefix_reuse_is_the_leading_blocks_an_earlier_request_had_and_how_long_ago():
    reqs = [Request(0.0, 1536, 5, (0, 1, 2)), Request(10000.0, 2000, 5, (0, 1, 9, 10)),
            Request(5000.0, 900, 5, (0, 1)), Request(20000.0, 100, 5, ()), Request(30000.0, 2048, 5, (11, 0, 1, 2))]
    # in arrival order: the one at 5 s shares two blocks but is shorter than them; a shared
    # block after a new one is no prefix (block ids name a block with all before it); the age
    # is since the last request that had the whole shared prefix
    assert prefix_reuse(reqs) == [(0, None), (1024, 5.0), (900, 5.0), (0, None), (0, None)]
    assert [c for c, _ in prefix_reuse(reqs, block=64)] == [0, 128, 128, 0, 0]
