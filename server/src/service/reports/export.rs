//! Reports as tables: CSV (UTF-8 with a byte-order mark and CRLF line ends,
//! so Excel opens Chinese text correctly) and XLSX. Column headers and
//! coded values (categories, visit kinds, reasons) are in Chinese; JSON
//! keeps the English keys and codes.

use chrono::NaiveDate;
use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::{
    BenefitsReport, CoverageReport, OpenNeedsReport, OverdueReport, RegisterChangesReport,
    VisitsByMonthReport,
};
use crate::error::{AppError, AppResult};

/// How a report is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Csv,
    Xlsx,
}

impl ReportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
        }
    }

    /// The audit action: reading on screen, or exporting a file.
    pub fn audit_action(self) -> &'static str {
        match self {
            Self::Json => "report.read",
            Self::Csv | Self::Xlsx => "report.export",
        }
    }
}

/// One cell of an exported table.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    /// A share between 0 and 1, shown as a percentage in XLSX.
    Share(f64),
    Date(NaiveDate),
    Empty,
}

impl From<&str> for Cell {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}
impl From<String> for Cell {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}
impl From<usize> for Cell {
    fn from(value: usize) -> Self {
        Self::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}
impl From<i64> for Cell {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}
impl From<u32> for Cell {
    fn from(value: u32) -> Self {
        Self::Int(i64::from(value))
    }
}
impl From<NaiveDate> for Cell {
    fn from(value: NaiveDate) -> Self {
        Self::Date(value)
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Empty, Into::into)
    }
}

/// A report laid out as one sheet.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Sheet name and file-name stem, e.g. `逾期未走访`.
    pub title: &'static str,
    /// File-name stem in ASCII, e.g. `overdue`.
    pub slug: &'static str,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

/// A report that can be exported.
pub trait Tabular {
    fn table(&self) -> Table;
}

/// The Chinese name of a coded value, or the code itself.
pub fn label(code: &str) -> &str {
    match code {
        "institutional_orphan" => "集中供养孤儿",
        "scattered_orphan" => "社会散居孤儿",
        "de_facto_unsupported" => "事实无人抚养儿童",
        "in_difficulty" => "困境儿童",
        "left_behind" => "留守儿童",
        "migrant" => "流动儿童",
        "low_income_edge" => "低保边缘家庭儿童",
        "home_visit" => "入户走访",
        "phone_follow_up" => "电话回访",
        "school_visit" => "学校走访",
        "other" => "其他",
        "added" => "纳入保障",
        "exited" => "退出保障",
        "director" => "儿童主任",
        "district" => "区民政局",
        "data_matching" => "多部门数据比对",
        "turned_18" => "年满18周岁",
        "adopted" => "被收养",
        "moved_away" => "迁出",
        "died" => "死亡",
        "no_longer_eligible" => "不再符合条件",
        "living" => "生活保障",
        "study" => "学业辅导",
        "psychology" => "心理疏导",
        "health" => "健康",
        "safety" => "安全",
        "total" => "合计",
        "town" => "镇（街道）",
        "village" => "村（社区）",
        other => other,
    }
}

fn coded(code: &str) -> Cell {
    Cell::Text(label(code).to_owned())
}

impl Tabular for OverdueReport {
    fn table(&self) -> Table {
        Table {
            title: "逾期未走访",
            slug: "overdue",
            headers: vec![
                "镇（街道）",
                "村（社区）",
                "儿童姓名",
                "儿童类别",
                "走访周期（天）",
                "纳入保障日期",
                "最近走访日期",
                "应走访日期",
                "逾期天数",
            ],
            rows: self
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.town_name.clone().into(),
                        r.village_name.clone().into(),
                        r.child_name.clone().into(),
                        coded(&r.category),
                        r.interval_days.into(),
                        r.registered_on.into(),
                        r.last_visit_on.into(),
                        r.due_date.into(),
                        r.days_overdue.into(),
                    ]
                })
                .collect(),
        }
    }
}

impl Tabular for CoverageReport {
    fn table(&self) -> Table {
        Table {
            title: "走访覆盖率",
            slug: "coverage",
            headers: vec![
                "层级",
                "镇（街道）",
                "村（社区）",
                "在册儿童",
                "周期内已走访",
                "逾期未走访",
                "未到期（从未走访）",
                "覆盖率",
            ],
            rows: self
                .rows
                .iter()
                .chain(std::iter::once(&self.summary))
                .map(|r| {
                    vec![
                        coded(&r.level),
                        r.town_name.clone().into(),
                        r.village_name.clone().into(),
                        r.children.into(),
                        r.visited_within_interval.into(),
                        r.overdue.into(),
                        r.not_yet_due.into(),
                        r.coverage.map_or(Cell::Empty, Cell::Share),
                    ]
                })
                .collect(),
        }
    }
}

impl Tabular for VisitsByMonthReport {
    fn table(&self) -> Table {
        Table {
            title: "走访统计",
            slug: "visits-by-month",
            headers: vec!["月份", "入户走访", "电话回访", "学校走访", "其他", "合计"],
            rows: self
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.month.clone().into(),
                        r.home_visit.into(),
                        r.phone_follow_up.into(),
                        r.school_visit.into(),
                        r.other.into(),
                        r.total.into(),
                    ]
                })
                .collect(),
        }
    }
}

impl Tabular for RegisterChangesReport {
    fn table(&self) -> Table {
        Table {
            title: "纳入与退出",
            slug: "register-changes",
            headers: vec![
                "生效日期",
                "变动",
                "镇（街道）",
                "村（社区）",
                "儿童姓名",
                "儿童类别",
                "来源",
                "退出原因",
            ],
            rows: self
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.effective_date.into(),
                        coded(&r.kind),
                        r.town_name.clone().into(),
                        r.village_name.clone().into(),
                        r.child_name.clone().into(),
                        coded(&r.category),
                        coded(&r.source),
                        r.reason.as_deref().map_or(Cell::Empty, coded),
                    ]
                })
                .collect(),
        }
    }
}

impl Tabular for OpenNeedsReport {
    fn table(&self) -> Table {
        Table {
            title: "需求台账",
            slug: "open-needs",
            headers: vec![
                "镇（街道）",
                "村（社区）",
                "需求类别",
                "待办",
                "进行中",
                "已逾期",
            ],
            rows: self
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.town_name.clone().into(),
                        r.village_name.clone().into(),
                        coded(&r.needs_area),
                        r.open.into(),
                        r.in_progress.into(),
                        r.past_due.into(),
                    ]
                })
                .collect(),
        }
    }
}

impl Tabular for BenefitsReport {
    fn table(&self) -> Table {
        Table {
            title: "保障金",
            slug: "benefits",
            headers: vec!["月份", "儿童类别", "人数", "月标准（元）", "金额（元）"],
            rows: self
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.month.clone().into(),
                        coded(&r.category),
                        r.children.into(),
                        r.standard_cny.into(),
                        r.total_cny.into(),
                    ]
                })
                .collect(),
        }
    }
}

/// The table as CSV: UTF-8 with a byte-order mark, CRLF line ends, dates as
/// `YYYY-MM-DD`, shares as decimals.
pub fn to_csv(table: &Table) -> AppResult<Vec<u8>> {
    let mut out = Vec::from(*b"\xEF\xBB\xBF");
    {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut out);
        let failed = |err: csv::Error| AppError::Internal(format!("writing CSV: {err}"));
        writer.write_record(&table.headers).map_err(failed)?;
        for row in &table.rows {
            writer
                .write_record(row.iter().map(|cell| match cell {
                    Cell::Text(text) => neutralised(text),
                    Cell::Int(n) => n.to_string(),
                    Cell::Share(share) => format!("{share:.4}"),
                    Cell::Date(date) => date.to_string(),
                    Cell::Empty => String::new(),
                }))
                .map_err(failed)?;
        }
        writer
            .flush()
            .map_err(|err| AppError::Internal(format!("writing CSV: {err}")))?;
    }
    Ok(out)
}

/// A text cell that a spreadsheet would run as a formula — one starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return (OWASP's CSV
/// injection list) — gets a leading `'`, so it opens as the text it is.
/// A child's or guardian's name, an address or a note typed on a phone
/// reaches these cells. XLSX writes text cells as text and needs nothing.
fn neutralised(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The table as an XLSX workbook of one sheet: a bold, frozen header row,
/// real numbers and dates, shares as percentages.
pub fn to_xlsx(table: &Table) -> AppResult<Vec<u8>> {
    build_xlsx(table).map_err(|err| AppError::Internal(format!("writing XLSX: {err}")))
}

fn build_xlsx(table: &Table) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name(table.title)?;
    let header = Format::new().set_bold();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let share = Format::new().set_num_format("0.0%");
    for (col, title) in table.headers.iter().enumerate() {
        sheet.write_string_with_format(0, column(col), *title, &header)?;
    }
    for (index, row) in table.rows.iter().enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        for (col, cell) in row.iter().enumerate() {
            let col = column(col);
            match cell {
                Cell::Text(text) => {
                    sheet.write_string(line, col, text)?;
                }
                Cell::Int(n) => {
                    sheet.write_number(line, col, *n as f64)?;
                }
                Cell::Share(s) => {
                    sheet.write_number_with_format(line, col, *s, &share)?;
                }
                Cell::Date(d) => {
                    sheet.write_datetime_with_format(line, col, d, &date)?;
                }
                Cell::Empty => {}
            }
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofit();
    workbook.save_to_buffer()
}

fn column(index: usize) -> u16 {
    u16::try_from(index).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            title: "测试",
            slug: "test",
            headers: vec!["村（社区）", "人数", "日期", "覆盖率"],
            rows: vec![vec![
                Cell::from("甲一村, \"东\""),
                Cell::Int(3),
                Cell::Date("2026-03-02".parse().unwrap()),
                Cell::Share(0.5),
            ]],
        }
    }

    #[test]
    fn csv_cells_that_would_run_as_formulas_open_as_text() {
        let hostile = [
            "=HYPERLINK(\"http://evil.example\",\"点我\")",
            "+1+1",
            "-2+3",
            "@SUM(A1:A2)",
            "\t=1+1",
            "\r=1+1",
        ];
        let table = Table {
            title: "测试",
            slug: "test",
            headers: vec!["备注"],
            rows: hostile.iter().map(|t| vec![Cell::from(*t)]).collect(),
        };
        let bytes = to_csv(&table).unwrap();
        let mut reader = csv::ReaderBuilder::new().from_reader(&bytes[3..]);
        let cells: Vec<String> = reader
            .records()
            .map(|r| r.unwrap().get(0).unwrap().to_owned())
            .collect();
        assert_eq!(cells.len(), hostile.len());
        for (cell, original) in cells.iter().zip(hostile) {
            assert_eq!(cell, &format!("'{original}"));
        }
        // Numbers are typed cells and stay numbers; plain text is untouched.
        let plain = Table {
            rows: vec![vec![Cell::Int(-3), Cell::from("王小明")]],
            headers: vec!["差", "姓名"],
            ..table
        };
        let text = String::from_utf8(to_csv(&plain).unwrap()[3..].to_vec()).unwrap();
        assert_eq!(text, "差,姓名\r\n-3,王小明\r\n");
    }

    #[test]
    fn csv_starts_with_a_byte_order_mark_and_quotes_what_needs_it() {
        let bytes = to_csv(&table()).unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
        assert_eq!(
            text,
            "村（社区）,人数,日期,覆盖率\r\n\"甲一村, \"\"东\"\"\",3,2026-03-02,0.5000\r\n"
        );
    }

    #[test]
    fn xlsx_is_a_zip_archive() {
        let bytes = to_xlsx(&table()).unwrap();
        assert!(bytes.starts_with(b"PK"));
    }
}
