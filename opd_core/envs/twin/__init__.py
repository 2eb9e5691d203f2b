"""The built-in dual-arm simulator `twin` (two grippers over one table, 14-D actions); see `sim`."""
