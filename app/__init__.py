"""The OPD Lab dashboard: Streamlit pages (app/views) over plain, testable logic modules.

Pages read and act on the lab only through `worker.api` (see app/backend.py); everything that can be computed
without Streamlit (series, grouping, figures, tables, forms, presets) lives in its own module and is unit-tested.
"""
