"""ParameterPanel: built from field_info, live cheap changes, Apply for expensive ones."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from engine.config import MuscConfig
from musc_gui.panels.parameters import ParameterPanel
from musc_gui.state import AppState


@pytest.fixture
def panel(qtbot):
    state = AppState(MuscConfig(backbone="efficientnet_lite0", backbone_3d="fpfh"))
    widget = ParameterPanel(state)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_every_config_field_has_an_editor(panel):
    assert set(panel.editors) == set(MuscConfig.field_info())
    assert panel.config() == panel.state.config  # round trip through the widgets


def test_expensive_fields_are_marked(panel):
    assert "re-extracts" in panel.editors["backbone"].toolTip()
    assert "re-groups" in panel.editors["c_thr"].toolTip()
    assert "instantly" in panel.editors["x_percent"].toolTip()


def test_x_slider_emits_cheap_changed(qtbot, panel):
    editor = panel.editors["x_percent"]
    assert editor.slider is not None
    with qtbot.waitSignal(panel.cheap_changed, timeout=1000) as blocker:
        editor.slider.setValue(100)  # a tenth of the range: 0.1 + 99.9 * 0.1
    assert blocker.args[0] == {"x_percent": pytest.approx(10.09)}
    assert editor.widget.value() == pytest.approx(10.09)
    editor.slider.setFocus()
    with qtbot.waitSignal(panel.cheap_changed, timeout=1000) as blocker:
        qtbot.keyClick(editor.slider, Qt.Key.Key_Right)
    assert blocker.args[0]["x_percent"] > 10.09
    assert not panel.apply_button.isEnabled()  # cheap changes need no Apply


def test_fusion_and_window_are_live(qtbot, panel):
    with qtbot.waitSignal(panel.cheap_changed, timeout=1000) as blocker:
        panel.editors["fusion"].widget.setCurrentText("scaled")
    assert blocker.args[0] == {"fusion": "scaled"}
    with qtbot.waitSignal(panel.cheap_changed, timeout=1000) as blocker:
        panel.editors["rscon_window"].widget.setValue(3)
    assert blocker.args[0] == {"rscon_window": 3}


def test_c_thr_apply_emits_config(qtbot, panel):
    panel.editors["c_thr"].widget.setValue(0.05)
    assert panel.apply_button.isEnabled()
    with qtbot.waitSignal(panel.apply_requested, timeout=1000) as blocker:
        qtbot.mouseClick(panel.apply_button, Qt.MouseButton.LeftButton)
    config = blocker.args[0]
    assert isinstance(config, MuscConfig)
    assert config.c_thr == pytest.approx(0.05)
    assert config.backbone == "efficientnet_lite0" and config.num_groups == 1024


def test_bad_list_shows_error_instead_of_emitting(qtbot, panel):
    panel.editors["r_list"].widget.setText("1, x")
    panel.editors["r_list"].changed.emit()
    with qtbot.assertNotEmitted(panel.apply_requested):
        panel.apply()
    assert "Degrees r" in panel.error_label.text()
    panel.editors["r_list"].widget.setText("1, 2")
    panel.apply()
    assert "odd" in panel.error_label.text()


def test_config_changed_updates_widgets(panel):
    panel.state.set_config(panel.state.config.replace(k_iter=40, image_size=320, cae=False))
    assert panel.editors["k_iter"].widget.value() == 40
    assert panel.config().image_size == 320 and panel.config().cae is False


def test_backbone_and_offline_notice(panel, scored_line):
    _, result = scored_line
    panel.state.set_config(MuscConfig())  # auto backbones
    panel.state.set_result(result)
    assert "efficientnet_lite0" in panel.backbone_label.text()
    assert "fpfh" in panel.backbone_label.text()
    assert not panel.weights_warning.isHidden()
    assert "dino_vitb8" in panel.weights_warning.text()
    assert not panel.weights_button.isHidden()
