import numpy as np

from sagan_tf import visualize


def test_grid_layout_and_range():
    images = np.linspace(-1, 1, 5 * 4 * 4 * 1).reshape(5, 4, 4, 1)
    grid = visualize.make_grid(images, columns=3, pad=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[1:5, 1:5, 0], np.asarray(visualize.to_uint8(images))[0, ..., 0])
    assert np.asarray(visualize.to_rgb(visualize.to_uint8(np.array([[[-1.0], [1.0]]]))))[0].tolist() \
        == [[0, 0, 0], [255, 255, 255]]


def test_attention_panel_lights_up_where_the_query_looks():
    # 4x4 queries, 4x4 keys: query (1, 1) looks only at key (3, 2).
    attention = np.full((1, 16, 16), 1e-6, np.float32)
    attention[0, 1 * 4 + 1, 3 * 4 + 2] = 1.0
    panels = visualize.attention_panels(np.zeros((1, 8, 8, 3), np.float32) - 1, attention,
                                        queries=[(1, 1)], min_size=8)
    assert panels.shape == (2, 8, 8, 3)
    heat = panels[1, ..., 0].astype(int)
    hot = np.argwhere(heat == heat.max())
    assert {tuple(p) for p in hot} == {(6, 4), (6, 5), (7, 4), (7, 5)}  # key (3, 2) at 2 px/key
    # The query pixel (2..3, 2..3) is outlined in green on the first panel, not filled.
    assert panels[0, 1, 1].tolist() == [0, 255, 0] and panels[0, 4, 4].tolist() == [0, 255, 0]
    assert panels[0, 2, 2].tolist() == [0, 0, 0]


def test_attention_panels_share_one_colour_scale_and_are_labelled():
    # Image 0's query looks at one key; image 1's is uniform: image 1 stays faint.
    attention = np.full((2, 16, 16), 1 / 16, np.float32)
    attention[0, 5] = 0.0
    attention[0, 5, 10] = 1.0
    panels = visualize.attention_panels(np.zeros((2, 8, 8, 3), np.float32) - 1, attention,
                                        queries=[(1, 1)], min_size=128)
    peaked, uniform = panels[1, ..., 0].astype(int), panels[3, ..., 0].astype(int)
    assert peaked.max() >= 127 and uniform[40:, 40:].max() <= 127 // 16 + 1
    # Labelled with the map's maximum (as a multiple of uniform): a text band top-left.
    assert (panels[3, :8, :60] != panels[3, 60:68, 60:120]).any()
