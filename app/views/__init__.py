"""The dashboard's pages: each module's `render()` is one st.Page, a thin layer over the logic modules."""
