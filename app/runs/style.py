"""The Runs area's stylesheet, from the current theme's colours (the app-wide stylesheet in
resources/styles/ covers the common widgets; this adds the area's own: cards, badges, the run
header, plots, the log console)."""

from __future__ import annotations

from app.theme import STATUS_COLORS, Theme

#: the light theme's badge backgrounds, a tint of each status's colour
BADGE_TINTS = {
    "starting": "#eef0f3",
    "running": "#e8f0fd",
    "stopping": "#fdf4e0",
    "completed": "#e6f5ec",
    "stopped": "#fdf4e0",
    "failed": "#fdecec",
    "crashed": "#fbe9f2",
    "queued": "#eef0f3",
}


def stylesheet(t: Theme) -> str:
    dark = t.name == "dark"
    badge_rules = []
    for status, fg in STATUS_COLORS.items():
        bg = "transparent" if dark else BADGE_TINTS[status]
        badge_rules.append(
            f'QLabel#statusBadge[status="{status}"] {{ color: {fg}; background: {bg}; border: 1px solid {fg}; }}'
        )
        badge_rules.append(
            f'QProgressBar#runProgress[status="{status}"]::chunk {{ background: {fg}; border-radius: 3px; }}'
        )
    return f"""
QWidget#runsArea, QStackedWidget#runPages {{ background: {t.window}; }}
QScrollArea#formScroll, QWidget#formContent, QScrollArea#plotScroll, QWidget#plotGrid {{ background: {t.window}; }}
QFrame#formHeader, QFrame#monitorHeader {{ background: {t.panel}; border-bottom: 1px solid {t.border}; }}
QLabel#pageTitle {{ font-size: 15pt; font-weight: 700; color: {t.text}; }}
QLabel#formStatus {{ color: {t.subtext}; padding-left: 6px; }}
QLabel#formStatus[state="ok"] {{ color: {t.ok}; font-weight: 600; }}
QLabel#formStatus[state="error"] {{ color: {t.error}; font-weight: 600; }}
QLabel#formHint {{ background: {t.panel}; color: {t.subtext}; border-top: 1px solid {t.border}; padding: 6px 20px; min-height: 18px; }}
QTabWidget#formTabs::pane {{ border: none; }}
QTabWidget#formTabs > QTabBar {{ background: {t.panel}; }}
QTabWidget#formTabs > QTabBar::tab {{ background: transparent; color: {t.subtext}; border: none;
    border-bottom: 2px solid transparent; padding: 6px 14px; margin-left: 12px; font-weight: 600; }}
QTabWidget#formTabs > QTabBar::tab:selected {{ color: {t.text}; border-bottom: 2px solid {t.accent}; }}

QFrame#formCard {{ background: {t.panel}; border: 1px solid {t.border}; border-radius: 8px; }}
QFrame#formCard QLabel {{ background: transparent; }}
QLabel#cardTitle {{ font-size: 11.5pt; font-weight: 700; color: {t.text}; }}
QLabel#groupTitle {{ color: {t.subtext}; font-size: 8pt; font-weight: 700; letter-spacing: 0.5px; }}
QLabel#fieldLabel {{ color: {t.text}; padding-top: 4px; }}
QLabel#modelSummary, QLabel#dataShape, QLabel#memoryFit {{ color: {t.text}; }}
QPlainTextEdit#specJson, QPlainTextEdit#previewText {{ background: {t.panel}; border: 1px solid {t.border}; border-radius: 6px; }}
QTableWidget#previewTable {{ background: {t.panel}; border: 1px solid {t.border}; border-radius: 6px; gridline-color: {t.border}; }}
QListWidget#deviceList {{ background: {t.panel}; border: 1px solid {t.border}; border-radius: 5px; padding: 2px; }}
QListWidget#deviceList::item {{ padding: 3px 2px; }}
QListWidget#deviceList[invalid="true"] {{ border-color: {t.error}; }}
QSpinBox[unset="true"] {{ color: {t.subtext}; }}
QComboBox[invalid="true"], QPlainTextEdit[invalid="true"] {{ border: 1px solid {t.error}; }}
QLabel#formStatusDetail {{ color: {t.subtext}; }}
QLabel#formStatusDetail[state="error"] {{ color: {t.error}; }}
QLineEdit#joinCommand {{ background: {t.window}; }}

QPushButton#startButton {{ background: {t.accent}; color: #ffffff; border: 1px solid {t.accent}; font-weight: 700; padding: 5px 18px; }}
QPushButton#startButton:hover {{ background: {t.accent}; border-color: {t.text}; }}
QPushButton#startButton:disabled {{ background: {t.border}; border-color: {t.border}; color: {t.subtext}; }}
QPushButton#newRunButton {{ background: {t.accent}; color: #ffffff; border: 1px solid {t.accent}; font-weight: 700; padding: 6px 12px; }}
QPushButton#killButton:enabled {{ color: {t.error}; }}
QPushButton:disabled {{ color: {t.subtext}; background: {t.window}; }}

QLabel#statusBadge {{ border-radius: 9px; padding: 1px 9px; font-weight: 700; font-size: 9pt; }}
{chr(10).join(badge_rules)}
QLabel#kindChip {{ color: {t.subtext}; border: 1px solid {t.border}; border-radius: 9px; padding: 1px 8px; font-size: 9pt; }}
QProgressBar#runProgress {{ background: {t.border}; border: none; border-radius: 3px; }}
QLabel#runFacts {{ color: {t.subtext}; }}
QLabel#errorBanner {{ color: {t.error}; background: {"transparent" if dark else "#fdf1f1"}; border: 1px solid {t.error};
    border-radius: 6px; padding: 7px 10px; }}

QFrame#metricPlot {{ background: {t.panel}; border: 1px solid {t.border}; border-radius: 8px; }}
QFrame#metricPlot QLabel {{ background: transparent; }}
QLabel#plotTitle {{ font-weight: 700; color: {t.text}; }}
QLabel#plotLegend, QLabel#plotReadout {{ color: {t.subtext}; font-size: 9pt; }}
QTextEdit#logConsole {{ background: {t.panel}; border: 1px solid {t.border}; border-radius: 6px; font-size: 9pt; }}

QWidget#runsSidebar {{ background: {t.panel}; border-right: 1px solid {t.border}; }}
QListView#runList {{ background: {t.panel}; border: none; outline: 0; }}
QLabel#sidebarTitle {{ font-size: 12pt; font-weight: 700; color: {t.text}; }}
QLabel#notice {{ color: {t.error}; background: {"transparent" if dark else "#fbe9f2"}; border: 1px solid #b0306a; border-radius: 6px; padding: 6px 8px; }}
QLabel#queueState {{ color: {t.subtext}; }}
"""
