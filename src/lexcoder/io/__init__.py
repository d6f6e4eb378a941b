"""Reading and writing tables in the formats researchers use, safely.

Readers turn every low-level failure into a :class:`~lexcoder.errors.DataError` naming the file;
writers go through a temporary file and an atomic rename so no half-written output is ever left.

- :mod:`~lexcoder.io.formats`: what a file is (format, compression, encoding, delimiter);
- :mod:`~lexcoder.io.read`: reading tables, with one clear error for every file that cannot be read;
- :mod:`~lexcoder.io.atomic`: writing a file or a folder atomically, and why;
- :mod:`~lexcoder.io.write`: writing tables, JSON and text.
"""
from __future__ import annotations

from .atomic import atomic_dir, atomic_path, current_umask
from .formats import COMPRESSIONS, FORMATS, bom_encoding, compression_of, describe_undecodable, table_format
from .read import count_rows, delimited_options, excel_sheet_columns, iter_table, read_table
from .write import (file_sha256, open_text_output, read_json, write_json, write_table, write_text,
                    write_text_table)

__all__ = ["COMPRESSIONS", "FORMATS", "atomic_dir", "atomic_path", "bom_encoding", "compression_of", "count_rows",
           "current_umask", "delimited_options", "describe_undecodable", "excel_sheet_columns", "file_sha256",
           "iter_table", "open_text_output", "read_json", "read_table", "table_format", "write_json", "write_table",
           "write_text", "write_text_table"]
