"""Records in, arrays out: reading files, tokenizing fields, encoding labels, splitting."""

from multifield.data.encoding import RecordEncoder
from multifield.data.io import Table, read_table, write_jsonl
from multifield.data.labels import LabelEncoder, parse_labels
from multifield.data.split import hash_bucket, split_by_hash
from multifield.data.text import FieldTokenizer

__all__ = [
    "FieldTokenizer",
    "LabelEncoder",
    "RecordEncoder",
    "Table",
    "hash_bucket",
    "parse_labels",
    "read_table",
    "split_by_hash",
    "write_jsonl",
]
