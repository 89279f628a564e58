// Seedling supervisor console: a small app over the JSON API, Chinese by
// default with English available. Every piece of text from the server is
// inserted as text (never as HTML).
"use strict";

const T = {
  zh: {
    title: "儿童督导工作台", skip: "跳到正文", nav: "主导航",
    dashboard: "仪表盘", visits: "走访记录", conflicts: "冲突队列", overdue: "逾期名单",
    children: "儿童名册", signout: "退出登录", lang: "English", signin: "登录",
    username: "用户名", password: "密码", badLogin: "用户名或密码错误",
    town: "镇（街道）", village: "村（社区）", all: "全部", status: "审核状态", kind: "走访方式",
    from: "开始日期", to: "结束日期", risk: "有风险标记", hasConflict: "有未解决冲突", amended: "有修正申请",
    filter: "筛选", reset: "重置", child: "儿童", director: "儿童主任", visitedAt: "走访时间",
    draft: "草稿", submitted: "待审核", returned: "已退回", approved: "已通过",
    home_visit: "入户走访", phone_follow_up: "电话回访", school_visit: "学校走访", other: "其他",
    total: "共 {n} 条", prev: "上一页", next: "下一页", open: "查看", none: "暂无记录",
    visit: "走访记录详情", approve: "审核通过", return: "退回修改", comment: "审核意见",
    commentHelp: "退回时必须填写需要修改的内容", locked: "已锁定（审核通过后不可修改，后续修改作为修正申请）",
    history: "修改历史", version: "版本", who: "操作人", when: "时间", changes: "修改内容",
    created: "创建", edited: "修改", reviewed: "审核", amendment_accepted: "采纳修正", deleted: "删除",
    field: "字段", before: "原值", after: "新值", conflictList: "冲突与修正",
    rule: "规则", winner: "采用", server: "服务器一方", client: "设备一方",
    localValue: "服务器值", remoteValue: "设备值", keep: "保留采用值", otherValue: "改用另一值",
    newValue: "填写新值", accept: "采纳修正", reject: "不予采纳", resolved: "已处理", resolve: "处理",
    valueJson: "新值（JSON）", note: "说明",
    concurrent_write: "同时修改", concurrent_item_write: "同时修改（条目）", remove_vs_update: "删除与修改冲突",
    delete_vs_edit: "删除与修改冲突", edit_vs_delete: "修改已删除记录", refused_field: "被拒绝的字段",
    amendment: "修正申请", rejected_mutation: "被拒绝的修改", possible_duplicate: "疑似重复走访",
    visit_after_transfer: "儿童迁出后的走访", visit_after_exit: "儿童退出保障后的走访",
    edit_to_exited_child: "修改已退出儿童", urgent: "紧急风险",
    name: "姓名", category: "类别", lastVisit: "最近走访", due: "下次应访", daysOverdue: "逾期天数", overdueBy: "（逾期 {n} 天）",
    state: "状态", upcoming: "未到期", due_today: "今日到期", not_tracked: "不跟踪",
    search: "姓名搜索", registerEvents: "保障登记变动", needs: "需求台账", area: "领域",
    description: "内容", owner: "负责人", dueDate: "期限", guardian: "监护人", phone: "电话",
    address: "住址", school: "学校", birth: "出生日期", interval: "走访周期（天）", days: "{n} 天",
    added: "纳入保障", exited: "退出保障", category_changed: "类别变更", transferred: "迁移",
    overdueCount: "逾期未走访儿童", activeChildren: "在册儿童", toReview: "待审核走访",
    openConflicts: "未解决冲突", coverageByTown: "各镇（街道）走访覆盖率", visitsPerMonth: "每月走访数",
    coverage: "覆盖率", month: "月份", count: "数量", dashNote: "截至 {asOf}：覆盖率 = 在走访周期内已走访的在册儿童占比。每月走访数为 {from} 至 {to} 的走访记录（不含已删除），点击合计可查看对应记录。", total_: "合计",
    institutional_orphan: "集中供养孤儿", scattered_orphan: "社会散居孤儿", de_facto_unsupported: "事实无人抚养儿童",
    in_difficulty: "困境儿童", left_behind: "留守儿童", migrant: "流动儿童", low_income_edge: "低保边缘家庭儿童",
    living: "生活保障", study: "学业辅导", psychology: "心理疏导", health: "健康", safety: "安全",
    in_progress: "进行中", done: "已完成", cancelled: "已取消",
    saved: "已保存", failed: "操作失败", loading: "加载中…", riskFlags: "风险标记",
    observations: "走访情况", followUp: "后续跟进", reviewer: "审核人", notFound: "未找到", forbidden: "无权查看此页面", effectiveDate: "生效日期", reasonSource: "原因 · 来源",
    district: "区民政局", data_matching: "省级数据比对", turned_18: "年满18周岁", adopted: "被收养", moved_away: "迁出",
    died: "死亡", no_longer_eligible: "不再符合条件",
    supervisor: "督导员", admin: "区民政局", backToLog: "返回走访记录",
    ctype: "类型", action: "操作", lww: "以最后修改为准", add_wins_set: "合并（新增优先）",
    immutable_after_create: "创建后不可改", server_only: "仅省级平台写入", riskN: "风险 {n}", conflictN: "冲突 {n}",
    deliveries: "省平台推送", pending: "待发送", delivering: "发送中", delivered: "已送达", parked: "已搁置",
    blocked_by_parked: "因搁置而等待", lag: "积压时长", lagNone: "无积压", lastDelivered: "最近送达",
    oldestUndelivered: "最早未送达消息写入于", paused: "推送已暂停：消息照常写入，暂不发送。", running: "推送运行中。",
    pause: "暂停推送", resume: "恢复推送", refresh: "刷新", replay: "重新发送", replayAll: "全部重新发送",
    replayed: "已重新排队 {n} 条", parkedList: "已搁置的消息", parkedHelp: "多次发送失败或省级平台拒收的消息，需要管理员查看原因后重新发送。",
    message: "消息", record: "记录", attempts: "尝试次数", lastStatus: "最近应答", lastError: "最近错误",
    lastAttempt: "最近尝试", written: "写入时间", deliveryState: "推送状态", noAnswer: "无应答",
    visit_approved: "走访审核通过", urgent_alert: "紧急风险预警", register_added: "纳入保障",
    register_category_changed: "类别变更", register_transferred: "迁移", register_exited: "退出保障",
    durS: "{n} 秒", durM: "{n} 分钟", durH: "{n} 小时", durD: "{n} 天",
    menu: "菜单", urgentCard: "未处理的紧急风险", urgentFilter: "紧急风险", urgentAny: "全部紧急风险",
    urgentUnhandled: "未处理", urgentHandled: "已处理", urgentBadge: "紧急 · 未处理", urgentDone: "紧急 · 已处理",
    urgentTitle: "紧急风险 · 强制报告",
    urgentHint: "发现疑似侵害未成年人情形，应立即向公安机关报案，并报告区民政局。请确认已知悉；报案后标记已上报。",
    urgentPending: "尚无人处理此紧急风险。", acknowledged: "已知悉", reported: "已上报",
    ackLine: "{who}（{role}）于 {when} 标记为“{action}”", raisedAt: "预警时间", urgentMark: "（紧急）",
    commentRequired: "退回修改时请填写审核意见，说明需要修改的内容。",
    alreadyHandled: "此紧急风险已有人处理，页面已刷新。",
    noEndpoint: "未配置省级平台：消息保存在待发送队列中，不会发送。请管理员在服务器配置中设置 integration_endpoint。",
    handleOnVisit: "在走访页处理",
  },
  en: {
    title: "Child supervision console", skip: "Skip to content", nav: "Main navigation",
    dashboard: "Dashboard", visits: "Visit log", conflicts: "Conflict queue", overdue: "Overdue",
    children: "Children", signout: "Sign out", lang: "中文", signin: "Sign in",
    username: "Username", password: "Password", badLogin: "Wrong username or password",
    town: "Town", village: "Village", all: "All", status: "Review status", kind: "Kind",
    from: "From", to: "To", risk: "Has risk flags", hasConflict: "Open conflicts", amended: "Amendments",
    filter: "Filter", reset: "Reset", child: "Child", director: "Director", visitedAt: "Visited at",
    draft: "Draft", submitted: "Submitted", returned: "Returned", approved: "Approved",
    home_visit: "Home visit", phone_follow_up: "Phone follow-up", school_visit: "School visit", other: "Other",
    total: "{n} in all", prev: "Previous", next: "Next", open: "Open", none: "Nothing here",
    visit: "Visit", approve: "Approve", return: "Return for revision", comment: "Review comment",
    commentHelp: "Required when returning: what should be corrected", locked: "Locked (approved; later edits become amendments)",
    history: "History", version: "Version", who: "By", when: "When", changes: "Changes",
    created: "Created", edited: "Edited", reviewed: "Reviewed", amendment_accepted: "Amendment accepted", deleted: "Deleted",
    field: "Field", before: "Before", after: "After", conflictList: "Conflicts and amendments",
    rule: "Rule", winner: "Winner", server: "server", client: "device",
    localValue: "Server value", remoteValue: "Device value", keep: "Keep winner", otherValue: "Use other value",
    newValue: "Enter new value", accept: "Accept", reject: "Reject", resolved: "Resolved", resolve: "Resolve",
    valueJson: "New value (JSON)", note: "Note",
    concurrent_write: "Concurrent edit", concurrent_item_write: "Concurrent item edit", remove_vs_update: "Remove vs update",
    delete_vs_edit: "Delete vs edit", edit_vs_delete: "Edit of a deleted record", refused_field: "Refused field",
    amendment: "Amendment", rejected_mutation: "Rejected change", possible_duplicate: "Possible duplicate",
    visit_after_transfer: "Visit after transfer", visit_after_exit: "Visit after exit",
    edit_to_exited_child: "Edit to an exited child", urgent: "Urgent risk",
    name: "Name", category: "Category", lastVisit: "Last visit", due: "Next due", daysOverdue: "Days overdue", overdueBy: " ({n} days overdue)",
    state: "State", upcoming: "Upcoming", due_today: "Due today", not_tracked: "Not tracked",
    search: "Name contains", registerEvents: "Register events", needs: "Needs ledger", area: "Area",
    description: "Description", owner: "Owner", dueDate: "Due", guardian: "Guardian", phone: "Phone",
    address: "Address", school: "School", birth: "Born", interval: "Visit interval (days)", days: "{n} days",
    added: "Added", exited: "Exited", category_changed: "Category changed", transferred: "Transferred",
    overdueCount: "Children overdue", activeChildren: "Children on the register", toReview: "Visits to review",
    openConflicts: "Open conflicts", coverageByTown: "Visit coverage by town", visitsPerMonth: "Visits per month",
    coverage: "Coverage", month: "Month", count: "Count", dashNote: "As of {asOf}: coverage = share of children on the register visited within their interval. Visits per month count the visit log from {from} to {to} (deleted visits left out); open a total to see those visits.", total_: "Total",
    institutional_orphan: "Institutional orphan", scattered_orphan: "Scattered orphan", de_facto_unsupported: "De-facto unsupported",
    in_difficulty: "In difficulty", left_behind: "Left-behind", migrant: "Migrant", low_income_edge: "Low-income edge",
    living: "Living", study: "Study", psychology: "Psychology", health: "Health", safety: "Safety",
    in_progress: "In progress", done: "Done", cancelled: "Cancelled",
    saved: "Saved", failed: "Failed", loading: "Loading…", riskFlags: "Risk flags",
    observations: "Observations", followUp: "Follow-up", reviewer: "Reviewer", notFound: "Not found", forbidden: "You may not open this page", effectiveDate: "Effective", reasonSource: "Reason · source",
    district: "District", data_matching: "Data matching", turned_18: "Turned 18", adopted: "Adopted", moved_away: "Moved away",
    died: "Died", no_longer_eligible: "No longer eligible",
    supervisor: "Supervisor", admin: "District bureau", backToLog: "Back to the visit log",
    ctype: "Type", action: "Action", lww: "last writer wins", add_wins_set: "add-wins set",
    immutable_after_create: "fixed after create", server_only: "provincial feed only", riskN: "risk {n}", conflictN: "conflicts {n}",
    deliveries: "Provincial delivery", pending: "Pending", delivering: "Sending", delivered: "Delivered", parked: "Parked",
    blocked_by_parked: "Held behind a parked message", lag: "Lag", lagNone: "no backlog", lastDelivered: "Last delivered",
    oldestUndelivered: "Oldest undelivered message written at", paused: "Delivery is paused: messages are still written, none are sent.", running: "Delivery is running.",
    pause: "Pause delivery", resume: "Resume delivery", refresh: "Refresh", replay: "Replay", replayAll: "Replay all",
    replayed: "{n} put back in the queue", parkedList: "Parked messages", parkedHelp: "Messages that failed repeatedly or that the platform refused; look at the reason, then replay them.",
    message: "Message", record: "Record", attempts: "Attempts", lastStatus: "Last answer", lastError: "Last error",
    lastAttempt: "Last attempt", written: "Written", deliveryState: "Delivery state", noAnswer: "no answer",
    visit_approved: "Visit approved", urgent_alert: "Urgent risk alert", register_added: "Added to the register",
    register_category_changed: "Category changed", register_transferred: "Transferred", register_exited: "Exited",
    durS: "{n} s", durM: "{n} min", durH: "{n} h", durD: "{n} days",
    menu: "Menu", urgentCard: "Unhandled urgent alerts", urgentFilter: "Urgent risk", urgentAny: "All urgent",
    urgentUnhandled: "Unhandled", urgentHandled: "Handled", urgentBadge: "Urgent · unhandled", urgentDone: "Urgent · handled",
    urgentTitle: "Urgent risk · mandatory reporting",
    urgentHint: "Suspected harm to a minor must be reported to the police at once, and to the district bureau. Confirm that you know of it; mark it reported once reported.",
    urgentPending: "Nobody has handled this urgent alert yet.", acknowledged: "Acknowledged", reported: "Reported",
    ackLine: "{who} ({role}) marked it “{action}” at {when}", raisedAt: "Alert raised", urgentMark: " (urgent)",
    commentRequired: "A return needs a comment saying what to correct.",
    alreadyHandled: "Somebody already handled this urgent alert; the page is reloaded.",
    noEndpoint: "No provincial platform configured: messages wait in the queue and are not sent. Set integration_endpoint in the server's configuration.",
    handleOnVisit: "Handle on the visit",
  },
};

// Risk flags (shared/GLOSSARY.md): the first seven fall under mandatory
// reporting (强制报告) and are urgent.
const RISKS = {
  sexual_abuse: ["疑似遭受性侵害", "Suspected sexual abuse"],
  physical_abuse: ["疑似遭受家庭暴力、虐待、殴打或欺凌", "Suspected violence, abuse, beating or bullying"],
  self_harm: ["自杀、自残风险或非正常伤残", "Suicide or self-harm risk, unexplained injury"],
  abandonment: ["被遗弃或长期无人照料", "Abandoned or long left without care"],
  missing_or_trafficked: ["来源不明、失踪或疑似被拐卖", "Of unknown origin, missing or suspected trafficked"],
  forced_begging: ["被组织乞讨", "Made to beg"],
  other_serious_harm: ["其他严重侵害身心健康的情形", "Other serious harm to body or mind"],
  guardianship_gap: ["监护缺失或监护能力不足", "Guardian absent or unable to care"],
  dropout_risk: ["辍学或失学风险", "At risk of dropping out of school"],
  untreated_illness: ["患病未及时就医", "Illness left untreated"],
  psychological_distress: ["情绪或心理困扰", "Emotional or psychological distress"],
  unsafe_housing: ["住房或居住安全隐患", "Unsafe housing"],
};
const riskLabel = (code) => (RISKS[code] ? RISKS[code][lang === "zh" ? 0 : 1] : code || "—");

// The Chinese message for every error code the API answers (the server's
// ErrorCode; a Rust test checks that none is missing). In English the
// server's own message is shown.
const ERRORS_ZH = {
  invalid_path: "地址有误，请检查链接后重试。",
  invalid_query: "筛选条件有误，请重置筛选后重试。",
  malformed_json: "提交的内容格式有误，请刷新页面后重试。",
  unreadable_body: "提交的内容无法读取，请重试。",
  invalid_cursor: "同步位置无效，请重新同步。",
  invalid_content_range: "上传的分段有误，请重新上传。",
  unsupported_format: "不支持此导出格式。",
  unsupported_grant_type: "不支持此登录方式。",
  missing_token: "请先登录。",
  invalid_token: "登录凭证无效，请重新登录。",
  token_expired: "登录已过期，请重新登录。",
  stale_token: "账号信息已变更，请重新登录。",
  session_ended: "会话已结束，请重新登录。",
  invalid_credentials: "用户名或密码错误。",
  invalid_client: "客户端凭证无效。",
  account_disabled: "账号已停用，请联系区民政局。",
  unknown_device: "此浏览器未登记为设备，请重新登录。",
  device_in_use: "此设备已由其他账号使用，请换用其他浏览器或联系区民政局。",
  device_reassigned: "此设备已分配给其他账号，请重新登录。",
  invalid_refresh_token: "登录凭证无效，请重新登录。",
  refresh_token_expired: "登录已过期，请重新登录。",
  refresh_token_reused: "登录凭证被重复使用，为安全起见已退出，请重新登录。",
  refresh_token_revoked: "登录凭证已注销，请重新登录。",
  validation_failed: "填写的内容不符合要求，请检查后重试。",
  forbidden: "您无权进行此操作。",
  device_revoked: "此设备已被注销（如报失），请联系区民政局。",
  not_found: "未找到该记录，或它不在您的管辖范围内。",
  method_not_allowed: "不支持此操作。",
  conflict: "记录已被他人修改或状态已变化，请刷新页面后重试。",
  server_restored: "服务器已从备份恢复：手机下次同步时会补传服务器缺少的记录。",
  body_timeout: "提交中断，请重试。",
  payload_too_large: "提交的内容过大。",
  uri_too_long: "筛选条件过多，请减少后重试。",
  unsupported_media_type: "不支持的文件类型。",
  unsupported_protocol: "版本过旧，请刷新页面或更新应用。",
  login_throttled: "登录失败次数过多，请稍后再试。",
  headers_too_large: "请求过大，请重新登录后再试。",
  internal_error: "服务器出错，请稍后重试；如仍失败请联系管理员。",
  insufficient_storage: "服务器存储空间不足，请稍后重试。",
  database_unavailable: "数据库暂时不可用，请稍后重试。",
  timeout: "服务器响应超时，请稍后重试。",
  server_busy: "服务器繁忙，请稍后重试。",
};
// What to show for a failed call: the code's message in Chinese, the
// server's message in English; a failed connection is said as such.
function errText(e) {
  if (!(e instanceof ApiError)) return lang === "zh" ? "无法连接服务器，请检查网络后重试。" : "The server cannot be reached; check the network.";
  const code = e.body && e.body.error && e.body.error.code;
  if (lang === "zh") return ERRORS_ZH[code] || `请求失败（${e.status}），请稍后重试。`;
  return e.message;
}

let lang = localStorage.getItem("seedling.lang") || "zh";
const t = (key, vars) => {
  let s = (T[lang] && T[lang][key]) || T.zh[key] || key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace("{" + k + "}", v);
  return s;
};
const label = (key) => (key == null ? "" : t(key));
// A guardian's relation: one of the field app's choices in words, anything
// else (typed on an older phone) as it was typed.
const relationWords = (v) => (v && T.zh["rel_" + v] ? t("rel_" + v) : v || "");

// ---- DOM helpers: text only, never innerHTML with data.
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
const $ = (sel) => document.querySelector(sel);
function show(...nodes) {
  const main = $("#main");
  main.replaceChildren(...nodes.filter((n) => n != null));
  main.focus({ preventScroll: true });
}
// What a page function answers: the nodes of the page, rendered by the
// router only if the user is still on that page.
const view = (...nodes) => nodes;
function clearNotice() {
  clearTimeout(toast.timer);
  $("#status").hidden = true;
  $("#status").textContent = "";
}
// A notice for the page an action opens (a new child's or account's page):
// kept over the address change that clears the old page's notices.
let carriedNotice = null;
function openWithNotice(hash, msg) {
  carriedNotice = msg;
  location.hash = hash;
}
function toast(msg) {
  const el = $("#status");
  el.textContent = msg;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}
// Times are shown in the district's calendar, as the server counts days.
const districtZone = () => sessionStorage.getItem("seedling.tz") || "Asia/Shanghai";
const fmtTime = (s) => (s ? new Date(s).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: districtZone(), hour12: false }) : "");
const fmtValue = (v) => (v == null ? "—" : typeof v === "string" ? v : JSON.stringify(v));

// ---- session and API.
const session = {
  get token() { return sessionStorage.getItem("seedling.token"); },
  get user() { try { return JSON.parse(sessionStorage.getItem("seedling.user")); } catch { return null; } },
  save(s) {
    sessionStorage.setItem("seedling.token", s.access_token);
    sessionStorage.setItem("seedling.refresh", s.refresh_token);
    sessionStorage.setItem("seedling.user", JSON.stringify(s.user));
    if (s.district_time_zone) sessionStorage.setItem("seedling.tz", s.district_time_zone);
  },
  clear() { ["seedling.token", "seedling.refresh", "seedling.user", "seedling.tz"].forEach((k) => sessionStorage.removeItem(k)); },
};
// One device id per account on this browser: an office computer is shared,
// and the server refuses one account's device id to another.
function deviceId(username) {
  const key = "seedling.device." + username.toLowerCase();
  let id = localStorage.getItem(key);
  if (!id) {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const x = [...b].map((n) => n.toString(16).padStart(2, "0")).join("");
    id = `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
    localStorage.setItem(key, id);
  }
  return id;
}
class ApiError extends Error {
  constructor(status, body) { super((body && body.error && body.error.message) || String(status)); this.status = status; this.body = body; }
}
async function api(method, path, body, retried) {
  const headers = { accept: "application/json" };
  if (session.token) headers.authorization = "Bearer " + session.token;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401 && !retried && sessionStorage.getItem("seedling.refresh")) {
    const r = await fetch("/api/v1/auth/refresh", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: sessionStorage.getItem("seedling.refresh") }),
    });
    if (r.ok) { session.save(await r.json()); return api(method, path, body, true); }
    session.clear(); location.hash = "#/login";
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}
const qs = (o) => new URLSearchParams(Object.entries(o).filter(([, v]) => v !== "" && v != null && v !== false)).toString();

// ---- chrome.
const PAGES = [["dashboard", "#/dashboard"], ["visits", "#/visits"], ["conflicts", "#/conflicts"], ["overdue", "#/overdue"], ["children", "#/children"], ["reports", "#/reports"]];
// Pages only an admin (district bureau) may open.
const ADMIN_PAGES = [["users", "#/users"], ["devices", "#/devices"], ["deliveries", "#/deliveries"]];
const isAdmin = () => (session.user || {}).role === "admin";
function chrome(current) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = "Seedling — " + t("title");
  $(".skip").textContent = t("skip");
  // Signed out is signed out: the sign-in page shows no navigation.
  const signedIn = !!session.token && current !== "login";
  $("#top").hidden = !signedIn;
  $("#top").classList.remove("open");
  $("#menu").setAttribute("aria-expanded", "false");
  $("#menu").textContent = t("menu");
  $("#nav").setAttribute("aria-label", t("nav"));
  $("#nav").replaceChildren(...[...PAGES, ...(isAdmin() ? ADMIN_PAGES : [])].map(([key, href]) => h("a", { href, "aria-current": key === current ? "page" : null, text: t(key) })));
  const u = session.user;
  $("#who").textContent = u ? `${u.display_name} · ${u.org_unit.name}` : "";
  $("#lang").textContent = t("lang");
  $("#lang").setAttribute("lang", lang === "zh" ? "en" : "zh-CN");
  $("#signout").textContent = t("signout");
}

// ---- pages.
function loginPage() {
  const err = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "login panel", onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = "";
    try {
      const s = await api("POST", "/api/v1/auth/login", {
        username: form.username.value.trim(), password: form.password.value,
        device_id: deviceId(form.username.value.trim()), device_name: "console",
      });
      session.save(s);
      unitsCache = null;
      location.hash = "#/dashboard";
    } catch (e2) { err.textContent = e2.status === 401 ? t("badLogin") : errText(e2); }
  } },
    h("h1", { text: t("title") }),
    h("label", {}, t("username"), h("input", { name: "username", id: "username", autocomplete: "username", required: true })),
    h("label", {}, t("password"), h("input", { name: "password", id: "password", type: "password", autocomplete: "current-password", required: true })),
    err,
    h("button", { class: "btn", type: "submit", id: "signin" }, t("signin")));
  show(form);
  form.username.focus();
}

let unitsCache = null;
async function units() {
  if (!unitsCache) unitsCache = await api("GET", "/api/v1/org-units");
  return unitsCache;
}
function select(name, options, value, labelKey) {
  return h("label", {}, t(labelKey),
    h("select", { name, id: "f-" + name },
      h("option", { value: "" }, t("all")),
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))));
}
function statusBadge(s) { return h("span", { class: "badge s-" + s }, label(s)); }
function table(headers, rows) {
  if (!rows.length) return h("p", { class: "muted" }, t("none"));
  // At phone width each row is a card; a cell names its column itself.
  for (const row of rows) {
    [...row.children].forEach((cell, i) => { if (headers[i]) cell.dataset.label = headers[i]; });
  }
  return h("div", { class: "table-wrap stack" }, h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows)));
}
function params() {
  const q = location.hash.split("?")[1] || "";
  return Object.fromEntries(new URLSearchParams(q));
}

async function visitsPage() {
  const p = params();
  // A visit's page links back to the log as it was filtered.
  sessionStorage.setItem("seedling.log", location.hash);
  const all = await units();
  const towns = all.filter((u) => u.kind === "town").map((u) => [u.id, u.name]);
  const form = h("form", { class: "filters panel", id: "visit-filters", onsubmit: (e) => {
    e.preventDefault();
    const f = new FormData(form);
    const o = {};
    for (const [k, v] of f.entries()) if (v) o[k] = v;
    location.hash = "#/visits?" + qs(o);
  } },
    towns.length > 1 ? select("town", towns, p.town, "town") : null,
    villagePicker(all, { value: p.village, town: p.town || null, allowAll: true }),
    select("review_status", ["submitted", "returned", "approved", "draft"].map((s) => [s, t(s)]), p.review_status, "status"),
    select("kind", ["home_visit", "phone_follow_up", "school_visit", "other"].map((s) => [s, t(s)]), p.kind, "kind"),
    h("label", {}, t("from"), h("input", { type: "date", name: "from", id: "f-from", value: p.from || "" })),
    h("label", {}, t("to"), h("input", { type: "date", name: "to", id: "f-to", value: p.to || "" })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "risk", value: "true", checked: p.risk === "true" }), t("risk")),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "has_conflict", value: "true", checked: p.has_conflict === "true" }), t("hasConflict")),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "amended", value: "true", checked: p.amended === "true" }), t("amended")),
    select("urgent", [["unhandled", t("urgentUnhandled")], ["handled", t("urgentHandled")], ["any", t("urgentAny")]], p.urgent, "urgentFilter"),
    h("div", { class: "actions" },
      h("button", { class: "btn", type: "submit", id: "apply-filters" }, t("filter")),
      h("a", { class: "btn secondary", href: "#/visits" }, t("reset"))));
  const limit = 25;
  const offset = Number(p.offset || 0);
  const page = await api("GET", "/api/v1/visits?" + qs({ ...p, limit, offset }));
  const rows = page.visits.map((v) => h("tr", { "data-visit": v.id, class: v.urgent_unhandled ? "urgent-row" : null },
    h("td", {}, fmtTime(v.visited_at)),
    h("td", {}, h("a", { href: "#/child/" + v.child_id }, v.child_name)),
    h("td", {}, `${v.town_name} ${v.village_name}`),
    h("td", {}, v.author_name),
    h("td", {}, label(v.kind)),
    h("td", {}, v.urgent ? h("span", { class: "badge " + (v.urgent_unhandled ? "urgent" : "s-returned"), "data-urgent": v.urgent_unhandled ? "unhandled" : "handled" }, t(v.urgent_unhandled ? "urgentBadge" : "urgentDone")) : null,
      " ", statusBadge(v.review_status),
      v.risk_types && v.risk_types.length ? h("div", { class: "flag risk-types" }, v.risk_types.map(riskLabel).join("、")) : null,
      v.open_conflicts ? h("div", { class: "flag" }, t("conflictN", { n: v.open_conflicts })) : null),
    h("td", {}, h("a", { href: "#/visit/" + v.id, class: "open-visit" }, t("open")))));
  const go = (o) => { location.hash = "#/visits?" + qs({ ...p, offset: o }); };
  return view(h("h1", {}, t("visits")), form,
    h("p", { id: "visit-total" }, t("total", { n: page.total })),
    table([t("visitedAt"), t("child"), t("village"), t("director"), t("kind"), t("status"), ""], rows),
    h("div", { class: "pager" },
      h("button", { class: "btn secondary", disabled: offset === 0, onclick: () => go(Math.max(0, offset - limit)) }, t("prev")),
      h("button", { class: "btn secondary", disabled: offset + limit >= page.total, onclick: () => go(offset + limit) }, t("next"))));
}

function fields(pairs) {
  return h("dl", { class: "fields" }, pairs.filter(([, v]) => v != null && v !== "").flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

// ---- fields as people read and write them (the conflict queue and the
// visit page): every synced field's Chinese label (shared/GLOSSARY.md and
// the field app's words), how its value is shown and which input edits
// it. The types mirror sync_core::rules; web::tests checks the tables.
Object.assign(T.zh, {
  cqIntro: "两台设备同时修改同一项、被拒绝的修改、审核通过后的修正申请，以及需要确认的提示。请选择采用哪一方，或直接改为正确的内容。",
  storedSide: "服务器上已保存的", deviceSide: "{who}的设备提交的", deviceSideAnon: "设备提交的",
  current: "当前采用", merged: "同步时采用", keepThis: "保留此值", useThis: "改用此值", editTo: "改为其他内容", saveValue: "保存此内容",
  noteOptional: "说明（可选）", acknowledge: "已知悉", byDistrict: "登记信息由区民政局处理。",
  onVisitUrgent: "紧急风险请在走访页确认已知悉或已上报。", proposed: "修正内容", submittedFields: "提交的内容",
  emptyValue: "（未填写）", removedItem: "（删除此条）", recordRef: "（记录编号）", otherVisit: "查看另一条走访记录",
  registerEntry: "儿童登记信息", needsItem: "需求台账", visitOn: "{day}的走访", noChild: "无法关联到儿童的记录",
  resolvedLine: "{who} 于 {when} 处理：{what}", resolvedKeep: "保持当前采用的值", resolvedNotice: "已知悉",
  resolvedOther: "改用了另一方的值", resolvedNew: "改为 {value}", resolvedAccept: "采纳了修正", resolvedReject: "不予采纳",
  resolvedUrgent: "在走访页标记为已知悉或已上报", someone: "有人",
  why_concurrent_write: "两台设备在同步前都修改了“{field}”。系统按“以最后修改为准”暂时采用了{winner}值，请确认哪一个正确。",
  why_concurrent_item_write: "两台设备同时修改了同一条“{field}”。系统暂时采用了较晚的修改（{winner}值），请确认。",
  why_remove_vs_update: "一台设备删除了这条“{field}”，另一方同时修改了它。系统保留了这条，请确认是否删除。",
  why_delete_vs_edit: "设备删除了这条记录，而它同时被修改过。系统保留了修改后的记录，请确认。",
  why_edit_vs_delete: "设备修改了一条已删除的记录：修改已保存，记录仍为删除状态，请确认。",
  why_refused_field: "{who}对“{field}”的修改未被接受：{reason}。",
  why_rejected_mutation: "{who}提交的修改整条未被接受：{reason}。",
  why_amendment: "走访记录审核通过后，{who}提交了修正。采纳后修正生效，记录仍为审核通过；不予采纳则保持原样。",
  why_possible_duplicate: "同一名儿童在同一天还有另一条走访记录，可能重复录入。",
  why_visit_after_transfer: "走访时这名儿童已迁往其他村（社区），记录已保留，请与儿童主任核实。",
  why_visit_after_exit: "走访时这名儿童已退出保障，记录已保留，请核实。",
  why_edit_to_exited_child: "修改的是已退出保障儿童的登记信息，请核实。",
  why_urgent: "走访记录含强制报告情形。",
  winnerServer: "服务器上已保存的", winnerClient: "{who}的设备提交的",
  place: "走访地点", placeNow: "儿童现在所在", coords: "北纬 {lat}°，东经 {lon}°", accuracy: "（精度约 {n} 米）",
  photos: "照片", photoN: "照片 {n}", photoPending: "待上传", photoPendingPart: "待上传（已收到 {n}%）",
  photoFailed: "照片无法显示", photoOpen: "查看大图：照片 {n}", close: "关闭", nextPlanned: "计划下次走访日期",
  historyNone: "暂无修改历史（早于历史记录功能的记录）", showChanges: "查看修改内容",
  h_submitted: "{who} 于 {when} 提交了走访记录", h_draft: "{who} 于 {when} 保存了走访草稿",
  h_returned: "{who} 于 {when} 退回：{comment}", h_approved: "{who} 于 {when} 审核通过", h_approvedComment: "{who} 于 {when} 审核通过：{comment}",
  h_edited: "{who} 于 {when} 修改了 {fields}", h_resubmitted: "{who} 于 {when} 修改了 {fields}，并重新提交",
  h_resubmittedOnly: "{who} 于 {when} 重新提交了走访记录", h_submittedAfter: "{who} 于 {when} 修改了 {fields}，并提交",
  h_amendment: "{who} 于 {when} 采纳了修正，修改了 {fields}", h_deleted: "{who} 于 {when} 删除了走访记录",
  h_nothing: "{who} 于 {when} 保存了走访记录（内容未变）", listSep: "、", day: "{m}月{d}日", dayYear: "{y}年{m}月{d}日",
  riskUnknown: "其他风险", active: "在册", male: "男", female: "女", plan_open: "待办",
  // A guardian's relation to the child: the field app's choices (app/src/i18n.ts).
  rel_mother: "母亲", rel_father: "父亲", rel_grandmother: "祖母", rel_grandfather: "祖父",
  rel_aunt: "姑姑/阿姨", rel_uncle: "叔伯/舅舅", rel_institution: "福利机构", rel_other: "其他亲属",
});
Object.assign(T.en, {
  cqIntro: "Two devices changing one field, refused changes, corrections after approval and notices to confirm. Choose which side to keep, or enter the right content.",
  storedSide: "Saved on the server", deviceSide: "Sent by {who}'s device", deviceSideAnon: "Sent by a device",
  current: "In use", merged: "Kept by the sync", keepThis: "Keep this", useThis: "Use this instead", editTo: "Change to something else", saveValue: "Save this",
  noteOptional: "Note (optional)", acknowledge: "Noted", byDistrict: "Register entries are resolved by the district bureau.",
  onVisitUrgent: "Acknowledge urgent alerts on the visit's page.", proposed: "Proposed correction", submittedFields: "What was sent",
  emptyValue: "(empty)", removedItem: "(remove this item)", recordRef: "(a record)", otherVisit: "Open the other visit",
  registerEntry: "Register entry", needsItem: "Needs ledger", visitOn: "Visit of {day}", noChild: "Records not tied to a child",
  resolvedLine: "{who} resolved it on {when}: {what}", resolvedKeep: "kept the value in use", resolvedNotice: "noted",
  resolvedOther: "used the other value", resolvedNew: "changed it to {value}", resolvedAccept: "accepted the correction", resolvedReject: "declined the correction",
  resolvedUrgent: "acknowledged on the visit's page", someone: "Someone",
  why_concurrent_write: "Two devices changed “{field}” before syncing. Last writer wins kept the value {winner} for now; confirm which one is right.",
  why_concurrent_item_write: "Two devices changed the same “{field}” item; the later change ({winner}) is kept for now. Confirm it.",
  why_remove_vs_update: "One device removed this “{field}” item while it was changed elsewhere; it was kept. Confirm whether to remove it.",
  why_delete_vs_edit: "A device deleted this record while it was being changed; the changed record was kept. Confirm it.",
  why_edit_vs_delete: "A device changed a deleted record: the change is kept, the record stays deleted. Confirm it.",
  why_refused_field: "{who}'s change to “{field}” was not accepted: {reason}.",
  why_rejected_mutation: "{who}'s change was refused as a whole: {reason}.",
  why_amendment: "{who} sent a correction after the visit was approved. Accepting applies it and the visit stays approved; declining leaves it as it is.",
  why_possible_duplicate: "The same child has another visit on the same day: possibly entered twice.",
  why_visit_after_transfer: "The child had moved to another village when visited; the visit is kept. Check with the director.",
  why_visit_after_exit: "The child had left the register when visited; the visit is kept. Check it.",
  why_edit_to_exited_child: "The register entry of a child who has left the register was changed. Check it.",
  why_urgent: "The visit reports a mandatory-reporting risk.",
  winnerServer: "saved on the server", winnerClient: "sent by {who}'s device",
  place: "Place", placeNow: "The child lives now in", coords: "{lat}° N, {lon}° E", accuracy: " (within about {n} m)",
  photos: "Photos", photoN: "Photo {n}", photoPending: "Not uploaded yet", photoPendingPart: "Not uploaded yet ({n}% received)",
  photoFailed: "The photo cannot be shown", photoOpen: "Open full size: photo {n}", close: "Close", nextPlanned: "Next planned visit",
  historyNone: "No history (recorded before the history was kept)", showChanges: "Show the changes",
  h_submitted: "{who} submitted the visit on {when}", h_draft: "{who} saved a draft on {when}",
  h_returned: "{who} returned it on {when}: {comment}", h_approved: "{who} approved it on {when}", h_approvedComment: "{who} approved it on {when}: {comment}",
  h_edited: "{who} changed {fields} on {when}", h_resubmitted: "{who} changed {fields} on {when} and submitted it again",
  h_resubmittedOnly: "{who} submitted it again on {when}", h_submittedAfter: "{who} changed {fields} on {when} and submitted it",
  h_amendment: "{who} accepted a correction on {when}, changing {fields}", h_deleted: "{who} deleted the visit on {when}",
  h_nothing: "{who} saved the visit on {when} (nothing changed)", listSep: ", ", day: "{d} {mon}", dayYear: "{d} {mon} {y}",
  riskUnknown: "Other risk", active: "On the register", male: "Male", female: "Female", plan_open: "Open",
  rel_mother: "mother", rel_father: "father", rel_grandmother: "grandmother", rel_grandfather: "grandfather",
  rel_aunt: "aunt", rel_uncle: "uncle", rel_institution: "institution", rel_other: "relative",
});

// The values a one-of field takes (sync_core::rules).
const OPTIONS = {
  visit_kinds: ["home_visit", "phone_follow_up", "school_visit", "other"],
  review_statuses: ["draft", "submitted", "returned", "approved"],
  categories: ["institutional_orphan", "scattered_orphan", "de_facto_unsupported", "in_difficulty", "left_behind", "migrant", "low_income_edge"],
  child_statuses: ["active", "exited"],
  exit_reasons: ["turned_18", "adopted", "moved_away", "died", "no_longer_eligible", "other"],
  genders: ["male", "female"],
  needs_areas: ["living", "study", "psychology"],
  plan_areas: ["living", "study", "psychology", "health", "safety"],
  plan_statuses: ["open", "in_progress", "done", "cancelled"],
};
// A code whose console word means something else on its own.
const OPTION_WORDS = { plan_statuses: { open: "plan_open" } };

// Every synced field: [type, Chinese label, English label]. Types:
// text, date, datetime, uuid, count, number, object, place,
// one_of:<OPTIONS list>, items:<needs|risk_flags|photos>.
const FIELDS = {
  visit: {
    child_id: ["uuid", "儿童", "Child"],
    author_id: ["uuid", "儿童主任", "Director"],
    device_id: ["uuid", "设备", "Device"],
    village_id: ["uuid", "村（社区）", "Village"],
    kind: ["one_of:visit_kinds", "走访方式", "Kind"],
    visited_at: ["datetime", "走访时间", "Visited at"],
    location: ["place", "走访地点", "Place"],
    observations: ["object", "走访情况", "Observations"],
    needs: ["items:needs", "需求", "Needs"],
    risk_flags: ["items:risk_flags", "风险标记", "Risk flags"],
    photos: ["items:photos", "照片", "Photos"],
    follow_up: ["text", "后续跟进", "Follow-up"],
    next_planned_date: ["date", "计划下次走访日期", "Next planned visit"],
    review_status: ["one_of:review_statuses", "审核状态", "Review status"],
    review_comment: ["text", "审核意见", "Review comment"],
  },
  child: {
    name: ["text", "姓名", "Name"],
    gender: ["one_of:genders", "性别", "Gender"],
    birth_date: ["date", "出生日期", "Born"],
    id_number: ["text", "身份证号", "Identity-card number"],
    category: ["one_of:categories", "儿童类别", "Category"],
    status: ["one_of:child_statuses", "保障状态", "Register status"],
    exit_reason: ["one_of:exit_reasons", "退出原因", "Exit reason"],
    exit_date: ["date", "退出日期", "Exit date"],
    village_id: ["uuid", "村（社区）", "Village"],
    guardian_name: ["text", "监护人", "Guardian"],
    guardian_relation: ["text", "与儿童关系", "Relation to the child"],
    guardian_phone: ["text", "监护人电话", "Guardian's phone"],
    address: ["text", "住址", "Address"],
    school: ["text", "学校", "School"],
    health_notes: ["text", "健康情况", "Health"],
    disability_notes: ["text", "残疾情况", "Disability"],
    benefit_standard_cny: ["number", "基本生活费（元/月）", "Monthly benefit (CNY)"],
    visit_interval_days: ["count", "走访周期（天）", "Visit interval (days)"],
    external_id: ["text", "省级平台编号", "Provincial id"],
  },
  case_plan_item: {
    child_id: ["uuid", "儿童", "Child"],
    village_id: ["uuid", "村（社区）", "Village"],
    area: ["one_of:plan_areas", "领域", "Area"],
    description: ["text", "内容", "Description"],
    status: ["one_of:plan_statuses", "状态", "Status"],
    owner: ["text", "负责人", "Owner"],
    due_date: ["date", "期限", "Due"],
  },
};
// The areas of a visit's observations (the field app's form).
const OBSERVATIONS = {
  living: ["生活情况", "Living"], study: ["学习情况", "Study"], health: ["健康情况", "Health"],
  psychology: ["心理情况", "Psychology"], safety: ["安全情况", "Safety"],
};
// Why a change was refused (sync_core::merge::Reason), every code.
const REASONS = {
  role_not_allowed: ["该账号无权修改此项", "this account may not change it"],
  not_author: ["只有记录走访的儿童主任本人可以修改", "only the director who recorded the visit may change it"],
  invalid_transition: ["记录当前的审核状态不允许这样修改", "the review status does not allow it"],
  immutable_field: ["此项创建后不能更改", "it cannot change after it was created"],
  server_only_field: ["此项只能由省级平台写入", "only the provincial platform writes it"],
  unknown_field: ["应用版本与服务器不一致（未知的项）", "the app and the server disagree (unknown field)"],
  invalid_value: ["填写的内容不符合要求", "the value is not valid"],
  wrong_field_kind: ["应用版本与服务器不一致（格式不符）", "the app and the server disagree (wrong shape)"],
  missing_required_field: ["缺少必填项", "a required field is missing"],
  locked: ["走访记录已审核通过并锁定", "the visit is approved and locked"],
  stale_review: ["审核时记录已被修改", "the record changed under the review"],
  record_deleted: ["记录已被删除", "the record was deleted"],
  record_not_found: ["服务器上没有这条记录", "the server has no such record"],
  id_exists: ["服务器上已有编号相同的记录", "a record with this id exists"],
  future_base_version: ["设备上的记录与服务器不一致，需要重新同步", "the device's copy is ahead of the server; it must sync again"],
  entity_mismatch: ["应用版本与服务器不一致（记录类型不符）", "the app and the server disagree (record type)"],
  visit_in_future: ["走访时间晚于当前时间", "the visit is dated in the future"],
  visit_before_birth: ["走访时间早于儿童出生日期", "the visit is dated before the child's birth"],
  out_of_scope: ["这名儿童不在提交人负责的村（社区）", "the child is outside the sender's village"],
  unknown_child: ["服务器上找不到这名儿童", "the server has no such child"],
};
const zhOr = (pair) => (pair ? pair[lang === "zh" ? 0 : 1] : null);
const reasonText = (code) => zhOr(REASONS[code]) || t("riskUnknown");
const riskName = (code) => (RISKS[code] ? riskLabel(code) : t("riskUnknown"));

// "needs#<item id>" → the field and the item.
function fieldPath(path) {
  const [field, item] = String(path || "").split("#");
  return { field, item: item || null };
}
function fieldRule(entity, field) {
  const rule = (FIELDS[entity] || {})[field];
  if (!rule) return { type: "text", label: t("other") };
  return { type: rule[0], label: lang === "zh" ? rule[1] : rule[2] };
}
const fieldLabel = (entity, field) => fieldRule(entity, field).label;
function optionWord(list, code) {
  const key = (OPTION_WORDS[list] || {})[code] || code;
  return label(key);
}

// ---- dates in the district's calendar.
function zoneParts(date) {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: districtZone(), year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }).formatToParts(date);
  return Object.fromEntries(parts.map((p) => [p.type, p.value]));
}
const MONTHS_EN = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
// "12月3日" (the year only when it is not this year's).
function dayWords(y, m, d, always) {
  const vars = { y, m, d, mon: MONTHS_EN[m - 1] };
  return t(always || y !== Number(zoneParts(new Date()).year) ? "dayYear" : "day", vars);
}
function dayOf(iso) {
  const p = zoneParts(new Date(iso));
  return dayWords(Number(p.year), Number(p.month), Number(p.day));
}
const clockOf = (iso) => { const p = zoneParts(new Date(iso)); return `${p.hour}:${p.minute}`; };
// A `YYYY-MM-DD` date as a date, with its year.
function dateWords(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(s));
  return m ? dayWords(Number(m[1]), Number(m[2]), Number(m[3]), true) : String(s);
}
const dateTimeWords = (iso) => `${dayOf(iso)} ${clockOf(iso)}`;
// The value of a datetime-local input for an instant, in the district's zone.
function localInput(iso) {
  if (!iso) return "";
  const p = zoneParts(new Date(iso));
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}
// The instant a datetime-local input names in the district's zone.
function fromLocalInput(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(s || "");
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  const p = zoneParts(new Date(wall));
  const shown = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute);
  return new Date(wall - (shown - wall)).toISOString();
}

// ---- places: a village by name with its town, coordinates with accuracy.
function placeName(all, villageId) {
  const village = all.find((u) => u.id === villageId);
  if (!village) return null;
  const town = all.find((u) => u.id === village.parent_id);
  return town ? `${town.name} ${village.name}` : village.name;
}
function coordinates(p) {
  if (!p || typeof p !== "object" || typeof p.lat !== "number" || typeof p.lon !== "number") return null;
  const text = t("coords", { lat: p.lat.toFixed(5), lon: p.lon.toFixed(5) });
  return typeof p.accuracy_m === "number" ? text + t("accuracy", { n: Math.round(p.accuracy_m) }) : text;
}

// ---- one value as the field shows it (a node).
function itemWords(setName, item) {
  if (item == null) return t("removedItem");
  if (typeof item !== "object") return String(item);
  if (setName === "needs") return [label(item.area) || "", item.description || item.note || ""].filter(Boolean).join("：");
  if (setName === "risk_flags") {
    return riskName(item.kind || item.code) + (item.urgent ? t("urgentMark") : "") + (item.note ? "：" + item.note : "");
  }
  return t("photos");
}
function showValue(entity, path, value, ctx) {
  const { field, item } = fieldPath(path);
  const { type } = fieldRule(entity, field);
  const empty = () => h("span", { class: "muted" }, t("emptyValue"));
  if (type.startsWith("items:")) {
    const set = type.slice(6);
    if (item != null || (value && !Array.isArray(value) && typeof value === "object" && !("add" in value || "remove" in value))) {
      if (set === "photos" && value) return photoStrip([value]);
      return h("span", {}, itemWords(set, value));
    }
    if (value && typeof value === "object" && !Array.isArray(value)) {
      // A set change as a device sent it: items added, ids removed.
      const added = (value.add || []).map((x) => h("li", {}, set === "photos" ? photoStrip([x]) : itemWords(set, x)));
      const removed = (value.remove || []).map(() => h("li", { class: "muted" }, t("removedItem")));
      return added.length || removed.length ? h("ul", { class: "value-list" }, added, removed) : empty();
    }
    const items = Array.isArray(value) ? value : [];
    if (!items.length) return empty();
    if (set === "photos") return photoStrip(items);
    return h("ul", { class: "value-list" }, items.map((x) => h("li", {}, itemWords(set, x))));
  }
  if (value == null || value === "") return empty();
  if (type === "date") return h("span", {}, dateWords(value));
  if (type === "datetime") return h("span", {}, dateTimeWords(value));
  if (type.startsWith("one_of:")) return h("span", {}, optionWord(type.slice(7), value));
  if (type === "uuid") {
    const name = field === "village_id" && ctx && ctx.units ? placeName(ctx.units, value) : null;
    return h("span", { class: name ? null : "muted" }, name || t("recordRef"));
  }
  if (type === "place") {
    if (typeof value === "string") return h("span", {}, value);
    return h("span", {}, coordinates(value) || t("emptyValue"));
  }
  if (type === "object") {
    const entries = Object.entries(value || {}).filter(([, x]) => x != null && x !== "");
    if (!entries.length) return empty();
    return h("dl", { class: "fields compact" }, entries.flatMap(([k, x]) => [h("dt", {}, zhOr(OBSERVATIONS[k]) || label(k)), h("dd", {}, String(x))]));
  }
  if (type === "count" && field === "visit_interval_days") return h("span", {}, t("days", { n: value }));
  if (field === "guardian_relation") return h("span", {}, relationWords(value));
  return h("span", { class: "text-value" }, typeof value === "string" ? value : String(value));
}
// The words of a value, for a sentence ("改为 …").
function valueWords(entity, path, value) {
  const el = showValue(entity, path, value, { units: unitsCache || [] });
  return el.textContent;
}

// ---- the field's own input: { node, read() } or null when the field
// cannot be edited here (ids, photos).
function fieldEditor(entity, path, value, ctx) {
  const { field, item } = fieldPath(path);
  const { type, label: name } = fieldRule(entity, field);
  const id = "edit-" + Math.random().toString(36).slice(2, 9);
  const labelled = (text, input) => h("label", { for: input.id }, text, input);
  const choose = (list, current, inputId, options) => {
    const sel = h("select", { id: inputId }, options.map(([v, text]) => h("option", { value: v, selected: v === current }, text)));
    return sel;
  };
  if (type.startsWith("one_of:")) {
    const list = type.slice(7);
    const sel = choose(list, value, id, OPTIONS[list].map((v) => [v, optionWord(list, v)]));
    return { node: labelled(name, sel), read: () => sel.value };
  }
  if (type === "date") {
    const input = h("input", { type: "date", id, value: value || "" });
    return { node: labelled(name, input), read: () => input.value || null };
  }
  if (type === "datetime") {
    const input = h("input", { type: "datetime-local", id, value: localInput(value) });
    return { node: labelled(name, input), read: () => fromLocalInput(input.value) };
  }
  if (type === "count" || type === "number") {
    const input = h("input", { type: "number", id, min: "0", step: type === "count" ? "1" : "any", value: value == null ? "" : String(value) });
    return { node: labelled(name, input), read: () => (input.value === "" ? null : Number(input.value)) };
  }
  if (type === "text") {
    const area = h("textarea", { id, maxlength: "4000" });
    area.value = value == null ? "" : String(value);
    return { node: labelled(name, area), read: () => (area.value.trim() ? area.value : null) };
  }
  if (type === "uuid" && field === "village_id" && ctx && ctx.units) {
    const towns = ctx.units.filter((u) => u.kind === "town");
    const sel = h("select", { id }, towns.map((town) => h("optgroup", { label: town.name },
      ctx.units.filter((u) => u.kind === "village" && u.parent_id === town.id)
        .map((v) => h("option", { value: v.id, selected: v.id === value }, v.name)))));
    return { node: labelled(name, sel), read: () => sel.value };
  }
  if (type === "object") {
    const current = value && typeof value === "object" ? value : {};
    const keys = [...new Set([...Object.keys(OBSERVATIONS), ...Object.keys(current)])];
    const areas = keys.map((k) => {
      const area = h("textarea", { id: `${id}-${k}`, maxlength: "4000" });
      area.value = current[k] == null ? "" : String(current[k]);
      return [k, area];
    });
    return {
      node: h("fieldset", {}, h("legend", {}, name), areas.map(([k, area]) => labelled(zhOr(OBSERVATIONS[k]) || label(k), area))),
      read: () => {
        const out = {};
        for (const [k, area] of areas) if (area.value.trim()) out[k] = area.value;
        return Object.keys(out).length ? out : null;
      },
    };
  }
  if (type === "place") {
    const text = h("input", { id, value: typeof value === "string" ? value : "" });
    const pos = value && typeof value === "object" ? value : {};
    const num = (key, words, v) => h("input", { type: "number", step: "any", id: `${id}-${key}`, "aria-label": words, value: v == null ? "" : String(v) });
    const lat = num("lat", lang === "zh" ? "纬度" : "Latitude", pos.lat);
    const lon = num("lon", lang === "zh" ? "经度" : "Longitude", pos.lon);
    const acc = num("acc", lang === "zh" ? "精度（米）" : "Accuracy (m)", pos.accuracy_m);
    return {
      node: h("fieldset", {}, h("legend", {}, name),
        labelled(lang === "zh" ? "地点名称" : "Place name", text),
        labelled(lat.getAttribute("aria-label"), lat), labelled(lon.getAttribute("aria-label"), lon), labelled(acc.getAttribute("aria-label"), acc)),
      read: () => {
        if (lat.value !== "" && lon.value !== "") {
          const p = { lat: Number(lat.value), lon: Number(lon.value) };
          if (acc.value !== "") p.accuracy_m = Number(acc.value);
          return p;
        }
        return text.value.trim() || null;
      },
    };
  }
  if (type.startsWith("items:")) {
    const set = type.slice(6);
    if (item != null) {
      // One item of a set: its own fields, keeping its id.
      const base = value && typeof value === "object" ? value : { id: item };
      if (set === "needs") {
        const area = choose("needs_areas", base.area, id, OPTIONS.needs_areas.map((v) => [v, label(v)]));
        const text = h("textarea", { id: id + "-text", maxlength: "500" });
        text.value = base.description || base.note || "";
        return {
          node: h("fieldset", {}, h("legend", {}, name), labelled(t("area"), area), labelled(t("description"), text)),
          read: () => ({ ...base, id: item, area: area.value, description: text.value }),
        };
      }
      if (set === "risk_flags") {
        const kind = choose("risks", base.kind, id, Object.keys(RISKS).map((code) => [code, riskLabel(code)]));
        const note = h("textarea", { id: id + "-note", maxlength: "1000" });
        note.value = base.note || "";
        const urgentCodes = Object.keys(RISKS).slice(0, 7);
        return {
          node: h("fieldset", {}, h("legend", {}, name), labelled(t("ctype"), kind), labelled(t("note"), note)),
          read: () => ({ ...base, id: item, kind: kind.value, note: note.value, urgent: urgentCodes.includes(kind.value) }),
        };
      }
      return null;
    }
    // A whole set: tick the items it is to hold.
    const known = new Map();
    for (const x of [...(ctx && ctx.current) || [], ...(Array.isArray(value) ? value : (value && value.add) || [])]) {
      if (x && x.id) known.set(x.id, x);
    }
    if (!known.size || set === "photos") return null;
    const keep = new Set(Array.isArray(value) ? value.map((x) => x.id) : [...known.keys()]);
    const boxes = [...known.values()].map((x, i) => {
      const box = h("input", { type: "checkbox", id: `${id}-${i}`, checked: keep.has(x.id) });
      return [x, box];
    });
    return {
      node: h("fieldset", {}, h("legend", {}, name),
        boxes.map(([x, box]) => h("label", { class: "check", for: box.id }, box, itemWords(set, x)))),
      read: () => boxes.filter(([, box]) => box.checked).map(([x]) => x),
    };
  }
  return null;
}

// ---- photos: thumbnails that open full size; a photo the phone has not
// uploaded yet says so. The bytes need the bearer token, so each photo is
// fetched and shown from a blob: address, released on the next page.
let photoUrls = [];
function releasePhotos() {
  photoUrls.forEach((u) => URL.revokeObjectURL(u));
  photoUrls = [];
}
async function photoBlobUrl(sha256) {
  const headers = { authorization: "Bearer " + session.token };
  let res = await fetch(`/api/v1/attachments/${sha256}`, { headers });
  if (res.status === 401 && sessionStorage.getItem("seedling.refresh")) {
    await api("GET", "/api/v1/auth/me");
    res = await fetch(`/api/v1/attachments/${sha256}`, { headers: { authorization: "Bearer " + session.token } });
  }
  if (!res.ok) throw new ApiError(res.status, null);
  const url = URL.createObjectURL(await res.blob());
  photoUrls.push(url);
  return url;
}
function openPhoto(url, n) {
  const img = h("img", { src: url, alt: t("photoN", { n }), class: "full" });
  const dialog = h("dialog", { class: "photo-view", id: "photo-view", "aria-label": t("photoN", { n }) },
    img, h("form", { method: "dialog" }, h("button", { class: "btn", type: "submit", id: "photo-close" }, t("close"))));
  dialog.addEventListener("close", () => dialog.remove());
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
  document.body.append(dialog);
  dialog.showModal();
}
// A row of photo tiles; each asks the server how far its photo is.
function photoStrip(items, first) {
  const start = first || 1;
  return h("ul", { class: "photos" }, items.filter((p) => p && p.sha256).map((p, i) => {
    const n = start + i;
    const tile = h("li", { class: "photo", "data-photo": p.sha256 }, h("span", { class: "muted" }, t("loading")));
    (async () => {
      try {
        const s = await api("GET", `/api/v1/attachments/${p.sha256}/status`);
        if (s.status !== "complete") {
          const part = s.size_bytes ? Math.floor((s.received_bytes / s.size_bytes) * 100) : 0;
          tile.dataset.state = "pending";
          tile.replaceChildren(h("span", { class: "pending" }, part > 0 ? t("photoPendingPart", { n: part }) : t("photoPending")));
          return;
        }
        const url = await photoBlobUrl(p.sha256);
        tile.dataset.state = "shown";
        tile.replaceChildren(h("button", { type: "button", class: "thumb", "aria-label": t("photoOpen", { n }), onclick: () => openPhoto(url, n) },
          h("img", { src: url, alt: t("photoN", { n }) })));
      } catch {
        tile.dataset.state = "failed";
        tile.replaceChildren(h("span", { class: "muted" }, t("photoFailed")));
      }
    })();
    return tile;
  }));
}

// ---- a visit's history as sentences.
const FLOW_FIELDS = ["review_status", "review_comment"];
function historySentence(x) {
  const who = x.actor_name || label(x.actor_role) || t("someone");
  const when = dayOf(x.at);
  const changes = Array.isArray(x.changes) ? x.changes : [];
  const change = (f) => changes.find((c) => c.field === f);
  const status = change("review_status");
  const comment = change("review_comment");
  // Content fields in the form's order (走访情况 before 后续跟进).
  const order = Object.keys(FIELDS.visit);
  const content = changes.filter((c) => !FLOW_FIELDS.includes(c.field))
    .sort((a, b) => order.indexOf(a.field) - order.indexOf(b.field));
  const fields = content.map((c) => fieldLabel("visit", c.field)).join(t("listSep"));
  const vars = { who, when, fields, comment: comment ? comment.after || "" : "" };
  if (x.kind === "deleted") return t("h_deleted", vars);
  if (x.kind === "created") return t(status && status.after === "draft" ? "h_draft" : "h_submitted", vars);
  if (x.kind === "reviewed" || (status && ["returned", "approved"].includes(status.after))) {
    if (status && status.after === "returned") return t("h_returned", vars);
    return t(vars.comment ? "h_approvedComment" : "h_approved", vars);
  }
  if (x.kind === "amendment_accepted") return t("h_amendment", vars);
  if (status && status.after === "submitted") {
    if (!content.length) return t("h_resubmittedOnly", vars);
    return t(status.before === "returned" ? "h_resubmitted" : "h_submittedAfter", vars);
  }
  return content.length ? t("h_edited", vars) : t("h_nothing", vars);
}
// What changed, before → after, as the fields show it (for "查看修改内容").
function historyDetails(x) {
  const changes = (Array.isArray(x.changes) ? x.changes : []).filter((c) => FIELDS.visit[c.field] && !["child_id", "author_id", "device_id", "village_id"].includes(c.field));
  if (!changes.length || x.kind === "created") return null;
  return h("details", {}, h("summary", {}, t("showChanges")),
    h("dl", { class: "fields changes" }, changes.flatMap((c) => [
      h("dt", {}, fieldLabel("visit", c.field)),
      h("dd", {}, showValue("visit", c.field, c.before, { units: unitsCache || [] }), " → ", showValue("visit", c.field, c.after, { units: unitsCache || [] }))])));
}

// ---- the reason of a conflict, in words.
function conflictReason(c) {
  const { field } = fieldPath(c.field);
  const who = c.actor_name || t("someone");
  const winner = c.winner === "client" ? t("winnerClient", { who }) : t("winnerServer");
  return t("why_" + c.kind, { field: field ? fieldLabel(c.entity, field) : "", who, winner, reason: reasonText(c.rule) });
}
function resolutionWords(c) {
  const r = c.resolution || {};
  const who = c.resolved_by_name || t("someone");
  const when = c.resolved_at ? dayOf(c.resolved_at) : "";
  let what;
  if (c.kind === "urgent") what = r.action ? label(r.action) : t("resolvedUrgent");
  else if (r.action === "keep") what = c.field ? t("resolvedKeep") : t("resolvedNotice");
  else if (r.action === "other") what = t("resolvedOther");
  else if (r.action === "new") what = t("resolvedNew", { value: valueWords(c.entity, c.field, r.value) });
  else if (r.action === "accept") what = t("resolvedAccept");
  else if (r.action === "reject") what = t("resolvedReject");
  else what = t("resolved");
  return t("resolvedLine", { who, when, what }) + (r.note ? `（${r.note}）` : "");
}

// One conflict as a card: what it is about, why, the two values side by
// side as the field shows them, and the resolution — choose a side, or
// change the field with its own input; accept or decline an amendment;
// note a notice. `after` runs once it is resolved.
function conflictCard(c, after, ctx) {
  const { field, item } = fieldPath(c.field);
  const title = field ? fieldLabel(c.entity, field) : label(c.kind);
  const note = h("input", { name: "note", "aria-label": t("noteOptional"), placeholder: t("noteOptional") });
  const act = async (action, value) => {
    try {
      await api("POST", `/api/v1/conflicts/${c.id}/resolve`, { action, value, note: note.value || undefined });
      toast(t("saved"));
      after();
    } catch (e) { toast(t("failed") + ": " + errText(e)); }
  };
  const byDistrict = c.entity === "child" && !isAdmin() && field !== "visit_interval_days";
  const can = (a) => c.actions.includes(a) && !byDistrict;
  const card = h("article", { class: "conflict", "data-conflict": c.id, "data-kind": c.kind, "aria-label": title },
    h("header", {},
      h("h4", {}, title),
      field ? h("span", { class: "badge" + (c.status === "open" ? " s-returned" : " s-approved") }, label(c.kind)) : null,
      h("span", { class: "muted" }, [c.actor_name, c.created_at ? dateTimeWords(c.created_at) : null].filter(Boolean).join(" · "))),
    h("p", { class: "reason" }, conflictReason(c)));
  const value = (v) => h("div", { class: "value" }, showValue(c.entity, c.field, v, ctx));
  if (field && (c.local_value !== undefined || c.remote_value !== undefined) && c.kind !== "rejected_mutation") {
    // Two sides: the server's (local) and the device's (remote).
    const side = (which, v) => {
      const won = (c.winner || "server") === which;
      const action = won ? "keep" : "other";
      const open = c.status === "open";
      const heading = which === "server" ? t("storedSide") : c.actor_name ? t("deviceSide", { who: c.actor_name }) : t("deviceSideAnon");
      return h("section", { class: "side" + (won && open ? " won" : ""), "data-side": which },
        h("h5", {}, heading, won ? h("span", { class: "badge" + (open ? " s-approved" : "") }, t(open ? "current" : "merged")) : null),
        value(v),
        can(action) ? h("button", { class: "btn" + (won ? " secondary" : ""), type: "button", "data-action": action, onclick: () => act(action) }, t(won ? "keepThis" : "useThis")) : null);
    };
    card.append(h("div", { class: "sides" },
      c.kind === "refused_field" ? null : side("server", c.local_value),
      side("client", c.remote_value)));
    if (can("new")) {
      const current = c.winner === "client" ? c.remote_value : c.local_value;
      const editor = fieldEditor(c.entity, c.field, current ?? (c.kind === "refused_field" ? c.remote_value : null), ctx);
      if (editor) {
        card.append(h("details", { class: "edit" }, h("summary", {}, t("editTo")),
          editor.node,
          h("div", { class: "actions" }, h("button", { class: "btn", type: "button", "data-action": "new", onclick: () => act("new", editor.read()) }, t("saveValue")))));
      }
    }
  } else if (c.kind === "amendment") {
    const proposed = c.remote_value && typeof c.remote_value === "object" ? c.remote_value : {};
    card.append(h("section", { class: "side", "data-side": "client" }, h("h5", {}, t("proposed")),
      h("dl", { class: "fields" }, Object.entries(proposed).flatMap(([f, change]) => [
        h("dt", {}, fieldLabel("visit", f)),
        h("dd", {}, showValue("visit", f, change && "value" in change ? change.value : change, ctx))]))));
  } else if (c.kind === "rejected_mutation") {
    const sent = (c.remote_value && c.remote_value.fields) || {};
    const shown = Object.entries(sent).filter(([f]) => (FIELDS[c.entity] || {})[f] && !["child_id", "author_id", "device_id"].includes(f));
    if (shown.length) {
      card.append(h("section", { class: "side", "data-side": "client" }, h("h5", {}, t("submittedFields")),
        h("dl", { class: "fields" }, shown.flatMap(([f, change]) => [
          h("dt", {}, fieldLabel(c.entity, f)),
          h("dd", {}, showValue(c.entity, f, change && "value" in change ? change.value : change, ctx))]))));
    }
  } else if (c.kind === "possible_duplicate" && c.remote_value && c.remote_value.other_visit_id) {
    card.append(h("p", {}, h("a", { href: "#/visit/" + c.remote_value.other_visit_id }, t("otherVisit"))));
  }
  const buttons = [];
  if (c.status === "open" && c.kind === "urgent") {
    buttons.push(h("span", { class: "muted" }, t("onVisitUrgent")),
      h("a", { class: "btn danger", href: "#/visit/" + c.record_id, "data-handle": c.id }, t("handleOnVisit")));
  } else if (c.status === "open" && byDistrict) {
    buttons.push(h("span", { class: "muted" }, t("byDistrict")));
  } else if (c.status === "open") {
    if (can("accept")) buttons.push(h("button", { class: "btn", type: "button", "data-action": "accept", onclick: () => act("accept") }, t("accept")));
    if (can("reject")) buttons.push(h("button", { class: "btn secondary", type: "button", "data-action": "reject", onclick: () => act("reject") }, t("reject")));
    if (!field && can("keep")) buttons.push(h("button", { class: "btn", type: "button", "data-action": "keep", onclick: () => act("keep") }, t("acknowledge")));
  } else {
    buttons.push(h("span", { class: "badge s-approved" }, t("resolved")), h("span", { class: "resolution" }, resolutionWords(c)));
  }
  if (c.status === "open" && c.actions.length && !byDistrict) card.append(h("label", { class: "note" }, t("noteOptional"), note));
  card.append(h("div", { class: "actions" }, buttons));
  return card;
}


async function visitPage(id) {
  releasePhotos();
  const [v, all] = await Promise.all([api("GET", "/api/v1/visits/" + id), units()]);
  const r = v.record || {};
  const comment = h("textarea", { id: "review-comment", name: "comment", "aria-describedby": "comment-help", maxlength: "2000" });
  const commentErr = h("p", { class: "error", id: "comment-error", role: "alert" });
  const decide = async (decision) => {
    commentErr.textContent = "";
    if (decision === "return" && !comment.value.trim()) {
      commentErr.textContent = t("commentRequired");
      comment.setAttribute("aria-invalid", "true");
      comment.focus();
      return;
    }
    try {
      await api("POST", `/api/v1/visits/${id}/review`, { decision, comment: comment.value, version: v.version });
      toast(t("saved"));
      route();
    } catch (e) { toast(t("failed") + ": " + errText(e)); }
  };
  const review = v.review_status === "submitted"
    ? h("section", { class: "panel", "aria-labelledby": "review-h" },
      h("h2", { id: "review-h" }, t("comment")),
      h("label", { for: "review-comment" }, t("comment")), comment,
      h("p", { id: "comment-help", class: "muted" }, t("commentHelp")), commentErr,
      h("div", { class: "actions" },
        h("button", { class: "btn", type: "button", id: "approve", onclick: () => decide("approve") }, t("approve")),
        h("button", { class: "btn danger", type: "button", id: "return", onclick: () => decide("return") }, t("return"))))
    : null;
  const ctx = { units: all };
  // Where: the village the visit was filed under (its town too), the
  // place the director wrote, the phone's position with its accuracy.
  const filedIn = placeName(all, r.village_id || v.village_id);
  const spot = typeof r.location === "string" ? r.location : null;
  const position = coordinates(r.location);
  const where = h("div", { id: "visit-place" },
    h("div", {}, [filedIn, spot].filter(Boolean).join(" · ") || t("emptyValue")),
    position ? h("div", { class: "coords", id: "visit-coords" }, position) : null,
    r.village_id && v.village_id && r.village_id !== v.village_id
      ? h("div", { class: "muted" }, t("placeNow"), "：", `${v.town_name} ${v.village_name}`) : null);
  const list = (items, words, attrs) => (items && items.length ? h("ul", { class: "value-list", ...attrs }, items.map((x) => h("li", {}, words(x)))) : null);
  const photos = (r.photos || []).filter((p) => p && p.sha256);
  const history = v.history.length
    ? h("ol", { class: "history", id: "history" }, v.history.map((x) => h("li", { "data-version": x.version },
      h("span", { class: "sentence" }, historySentence(x)), " ",
      h("time", { class: "muted", datetime: x.at, title: fmtTime(x.at) }, clockOf(x.at)),
      historyDetails(x))))
    : h("p", { class: "muted", id: "history" }, t("historyNone"));
  return view(h("p", {}, h("a", { href: sessionStorage.getItem("seedling.log") || "#/visits", id: "back-to-log" }, "← " + t("backToLog"))),
    h("h1", {}, t("visit"), " · ", v.child_name),
    v.urgent_alert ? urgentBanner(id, v.urgent_alert) : null,
    h("p", {}, statusBadge(v.review_status), " ", v.locked ? h("strong", { id: "locked" }, t("locked")) : null),
    h("section", { class: "panel", id: "visit-fields" }, fields([
      [t("child"), h("a", { href: "#/child/" + v.child_id }, v.child_name)],
      [t("visitedAt"), dateTimeWords(v.visited_at)],
      [t("kind"), label(v.kind)],
      [t("director"), v.author_name],
      [t("place"), where],
      [t("observations"), r.observations && Object.keys(r.observations).length ? showValue("visit", "observations", r.observations, ctx) : null],
      [t("needs"), list(r.needs, (n) => itemWords("needs", n), { id: "visit-needs" })],
      [t("riskFlags"), list(r.risk_flags, (f) => itemWords("risk_flags", f), { id: "visit-risks", class: "value-list flag" })],
      [t("photos"), photos.length ? h("div", { id: "visit-photos" }, photoStrip(photos)) : null],
      [t("followUp"), r.follow_up],
      [t("nextPlanned"), r.next_planned_date ? dateWords(r.next_planned_date) : null],
      [t("comment"), v.review_comment],
      [t("reviewer"), v.reviewed_by_name ? `${v.reviewed_by_name} · ${dateTimeWords(v.reviewed_at)}` : null],
      [t("version"), String(v.version)],
    ])),
    review,
    h("h2", {}, t("conflictList")),
    v.conflicts.length
      ? h("div", { class: "conflicts" }, v.conflicts.map((c) => conflictCard(c, route, ctx)))
      : h("p", { class: "muted" }, t("none")),
    h("h2", {}, t("history")),
    history);
}

// The red banner of a visit with an urgent risk flag: which risks, the
// mandatory-reporting hint, who acknowledged it when, and the two buttons.
function urgentBanner(id, u) {
  const ack = async (action) => {
    try {
      await api("POST", `/api/v1/visits/${id}/acknowledge`, { action });
      toast(t("saved"));
    } catch (e) {
      toast(e.status === 409 ? t("alreadyHandled") : t("failed") + ": " + errText(e));
    }
    route();
  };
  const reported = u.acknowledgements.some((a) => a.action === "reported" && a.at >= u.raised_at);
  const buttons = [];
  if (u.unhandled) buttons.push(h("button", { class: "btn danger", type: "button", id: "ack-acknowledged", onclick: () => ack("acknowledged") }, t("acknowledged")));
  if (u.unhandled || !reported) buttons.push(h("button", { class: "btn danger", type: "button", id: "ack-reported", onclick: () => ack("reported") }, t("reported")));
  return h("section", { class: "banner urgent", id: "urgent-banner", "aria-labelledby": "urgent-h" },
    h("h2", { id: "urgent-h" }, t("urgentTitle")),
    h("p", { class: "risk-types" }, u.risk_types.map(riskLabel).join("、") || "—"),
    h("p", {}, t("urgentHint")),
    h("p", { class: "muted-on" }, t("raisedAt"), "：", fmtTime(u.raised_at)),
    u.unhandled ? h("p", { id: "urgent-state" }, h("strong", {}, t("urgentPending"))) : null,
    u.acknowledgements.length ? h("ul", { id: "acknowledgements" }, u.acknowledgements.map((a) => h("li", { "data-ack": a.action },
      t("ackLine", { who: a.by_name || "", role: label(a.by_role), when: fmtTime(a.at), action: t(a.action) })))) : null,
    buttons.length ? h("div", { class: "actions" }, buttons) : null);
}

// The conflict queue, grouped by child and, under a child, by visit (or
// its register entry, or a needs-ledger item); each heading links to its
// page. The API keeps to the caller's area (docs/API.md).
async function conflictsPage() {
  releasePhotos();
  const p = params();
  const status = p.status || "open";
  const [page, all] = await Promise.all([api("GET", "/api/v1/conflicts?" + qs({ status, limit: 200 })), units()]);
  const ctx = { units: all };
  const children = new Map();
  for (const c of page.conflicts) {
    const childKey = c.child_id || "";
    if (!children.has(childKey)) children.set(childKey, { id: c.child_id, name: c.child_name, records: new Map() });
    const group = children.get(childKey).records;
    const recordKey = `${c.entity}:${c.record_id}`;
    if (!group.has(recordKey)) group.set(recordKey, { c, items: [] });
    group.get(recordKey).items.push(c);
  }
  const recordHeading = ({ c }) => {
    if (c.entity === "visit") {
      const words = t("visitOn", { day: c.visited_at ? dateTimeWords(c.visited_at) : "" });
      return h("h3", {}, h("a", { href: "#/visit/" + c.record_id, "data-visit-link": c.record_id }, words));
    }
    const words = c.entity === "child" ? t("registerEntry") : t("needsItem");
    return h("h3", {}, c.child_id ? h("a", { href: "#/child/" + c.child_id }, words) : words);
  };
  const groups = [...children.values()].map((child) => h("section", { class: "conflict-group", "data-child": child.id || "" },
    h("h2", {}, child.id ? h("a", { href: "#/child/" + child.id }, child.name || t("child")) : t("noChild")),
    [...child.records.values()].map((record) => h("section", { class: "conflict-record", "data-record": record.c.record_id },
      recordHeading(record),
      record.items.map((c) => conflictCard(c, route, ctx))))));
  return view(h("h1", {}, t("conflicts")),
    h("p", { class: "muted" }, t("cqIntro")),
    h("div", { class: "actions", role: "group", "aria-label": t("state") },
      ["open", "resolved", "all"].map((s) => h("a", { class: "btn" + (s === status ? "" : " secondary"), href: "#/conflicts?status=" + s, "aria-current": s === status ? "page" : null }, s === "open" ? t("openConflicts") : s === "resolved" ? t("resolved") : t("all")))),
    h("p", { id: "conflict-total" }, t("total", { n: page.total })),
    groups.length ? h("div", { class: "conflict-queue" }, groups) : h("p", { class: "muted" }, t("none")));
}

function dueCell(c) {
  const d = c.due || {};
  if (d.state === "overdue") return h("span", { class: "s-overdue" }, `${d.due}${t("overdueBy", { n: d.days_overdue })}`);
  return h("span", {}, d.due || "", " ", label(d.state));
}

async function childrenPage(overdueOnly) {
  const p = params();
  const all = await units();
  const towns = all.filter((u) => u.kind === "town").map((u) => [u.id, u.name]);
  const query = { ...p, overdue: overdueOnly ? "true" : p.overdue };
  delete query.add;
  const roster = await api("GET", "/api/v1/children?" + qs(query));
  const base = overdueOnly ? "#/overdue" : "#/children";
  const form = h("form", { class: "filters panel", onsubmit: (e) => {
    e.preventDefault();
    const o = {};
    for (const [k, v] of new FormData(form).entries()) if (v) o[k] = v;
    location.hash = base + "?" + qs(o);
  } },
    towns.length > 1 ? select("town", towns, p.town, "town") : null,
    villagePicker(all, { value: p.village, town: p.town || null, allowAll: true }),
    select("category", ["institutional_orphan", "scattered_orphan", "de_facto_unsupported", "in_difficulty", "left_behind", "migrant", "low_income_edge"].map((c) => [c, t(c)]), p.category, "category"),
    overdueOnly ? null : h("label", {}, t("search"), h("input", { name: "q", value: p.q || "" })),
    h("div", { class: "actions" }, h("button", { class: "btn", type: "submit" }, t("filter")), h("a", { class: "btn secondary", href: base }, t("reset"))));
  const rows = roster.children.map((c) => h("tr", {},
    h("td", {}, h("a", { href: "#/child/" + c.id }, c.name)),
    h("td", {}, paren(c.village_name, c.town_name)), h("td", {}, label(c.category)),
    h("td", {}, c.last_visit_on || "—"), h("td", {}, String(c.interval_days)), h("td", {}, dueCell(c))));
  return view(h("h1", {}, overdueOnly ? t("overdue") : t("children")),
    !overdueOnly && isAdmin() ? addChildPanel(all) : null, form,
    h("p", {}, t("total", { n: roster.total })),
    table([t("name"), t("village"), t("category"), t("lastVisit"), t("interval"), t("due")], rows));
}

async function childPage(id) {
  const [c, all] = await Promise.all([api("GET", "/api/v1/children/" + id), units()]);
  return view(h("h1", {}, c.name), h("p", { id: "child-state" }, label(c.category), " · ", c.status === "exited" ? t("exitedState") + " · " : null, dueCell(c)),
    h("section", { class: "panel" }, fields([
      [t("village"), h("span", { id: "child-village" }, paren(c.village_name, c.town_name))], [t("birth"), c.birth_date],
      [t("guardian"), [c.guardian_name, relationWords(c.guardian_relation)].filter(Boolean).join(" · ")],
      [t("phone"), c.guardian_phone], [t("address"), c.address], [t("school"), c.school],
      [t("interval"), String(c.interval_days)], [t("lastVisit"), c.last_visit_on],
    ])),
    isAdmin() ? registerPanel(c, all) : null,
    h("h2", { id: "register-events-h" }, t("registerEvents")),
    h("div", { id: "register-events" }, table([t("effectiveDate"), t("ctype"), t("before"), t("after"), t("reasonSource")], c.register_events.map((e) => h("tr", { "data-event": e.kind },
      h("td", {}, e.effective_date), h("td", {}, label(e.kind)), h("td", {}, registerValue(all, e, e.from_value)), h("td", {}, registerValue(all, e, e.to_value)), h("td", {}, [label(e.reason), label(e.source)].filter(Boolean).join(" · ")))))),
    h("h2", {}, t("visits")),
    table([t("visitedAt"), t("director"), t("kind"), t("status"), ""], c.visits.map((v) => h("tr", {},
      h("td", {}, fmtTime(v.visited_at)), h("td", {}, v.author_name), h("td", {}, label(v.kind)), h("td", {}, statusBadge(v.review_status)),
      h("td", {}, h("a", { href: "#/visit/" + v.id }, t("open")))))),
    h("h2", {}, t("needs")),
    table([t("area"), t("description"), t("state"), t("owner"), t("dueDate")], c.needs.map((n) => h("tr", {},
      h("td", {}, label(n.area)), h("td", {}, n.description), h("td", {}, label(n.status)), h("td", {}, n.owner || ""), h("td", {}, n.due_date || "")))));
}

function sizeBars(root) {
  // Widths set through the CSSOM (the style sheet policy allows no inline style attributes).
  root.querySelectorAll("[data-w]").forEach((el) => { el.style.width = el.dataset.w + "%"; });
}

const pct = (share) => (share == null ? "—" : `${Math.round(share * 100)}%`);
const lastDayOf = (month) => {
  const [y, m] = month.split("-").map(Number);
  return new Date(Date.UTC(y, m, 0)).toISOString().slice(0, 10);
};

// The figures come from one report call (GET /api/v1/reports/dashboard), so
// they are the reports' own; the two work-queue cards are the totals of the
// queues they open.
// The work-queue cards (urgent alerts, visits to review, open conflicts)
// are asked again every POLL_MS while the dashboard is open, so an urgent
// visit pushed by a phone shows within a minute.
const POLL_MS = 15000;
let poller = null;
const queueCounts = () => Promise.all([
  api("GET", "/api/v1/visits?urgent=unhandled&limit=1"),
  api("GET", "/api/v1/visits?review_status=submitted&limit=1"),
  api("GET", "/api/v1/conflicts?limit=1"),
]).then(([urgent, submitted, conflicts]) => ({ urgentCard: urgent.total, toReview: submitted.total, openConflicts: conflicts.total }));
function pollDashboard() {
  clearInterval(poller);
  poller = setInterval(async () => {
    const onDashboard = !location.hash || location.hash.startsWith("#/dashboard");
    if (!onDashboard || !session.token) { clearInterval(poller); return; }
    try {
      const counts = await queueCounts();
      for (const [key, n] of Object.entries(counts)) {
        const el = document.querySelector(`[data-card=${key}]`);
        if (el) el.textContent = String(n);
      }
      const urgent = $("#urgent-card");
      if (urgent) urgent.classList.toggle("alarm", counts.urgentCard > 0);
    } catch { /* the next round tries again */ }
  }, POLL_MS);
}

async function dashboardPage() {
  const [d, counts] = await Promise.all([api("GET", "/api/v1/reports/dashboard"), queueCounts()]);
  const card = (key, n, href) => h("a", { class: "card", href }, h("div", { class: "n", "data-card": key }, String(n)), h("div", {}, t(key)));
  const covRows = d.coverage_by_town.map((r) => h("tr", { "data-town": r.town_id },
    h("th", { scope: "row" }, h("a", { href: "#/children?" + qs({ town: r.town_id }) }, r.town_name)),
    h("td", { "data-coverage": "" }, h("a", { href: "#/reports?" + qs({ town: r.town_id }) }, `${pct(r.coverage)} (${r.visited_within_interval}/${r.children})`)),
    h("td", {}, r.overdue ? h("a", { href: "#/overdue?" + qs({ town: r.town_id }) }, String(r.overdue)) : "0"),
    h("td", { "aria-hidden": "true" }, h("div", { class: "bar" }, h("span", { "data-w": Math.round((r.coverage || 0) * 100) })))));
  const f = d.filters;
  // A month's days within the report's period (ISO dates compare as text).
  const monthDays = (m) => {
    const first = `${m}-01`, last = lastDayOf(m);
    return { from: first < f.from ? f.from : first, to: last > f.to ? f.to : last };
  };
  const maxMonth = Math.max(1, ...d.visits_by_month.map((m) => m.total));
  const kinds = ["home_visit", "phone_follow_up", "school_visit", "other"];
  const monthRows = d.visits_by_month.map((m) => h("tr", { "data-month": m.month },
    h("th", { scope: "row" }, m.month),
    kinds.map((k) => h("td", {}, String(m[k]))),
    h("td", {}, h("a", { href: "#/visits?" + qs(monthDays(m.month)), "data-total": "" }, String(m.total))),
    h("td", { "aria-hidden": "true" }, h("div", { class: "bar" }, h("span", { "data-w": Math.round((m.total / maxMonth) * 100) })))));
  const root = h("div", {},
    h("h1", {}, t("dashboard")),
    h("div", { class: "cards" },
      h("a", { class: "card urgent" + (counts.urgentCard ? " alarm" : ""), id: "urgent-card", href: "#/visits?urgent=unhandled" },
        h("div", { class: "n", "data-card": "urgentCard" }, String(counts.urgentCard)), h("div", {}, t("urgentCard"))),
      card("overdueCount", d.overdue_children, "#/overdue"), card("activeChildren", d.tracked_children, "#/children"),
      h("a", { class: "card", href: "#/reports" }, h("div", { class: "n", "data-card": "coverage" }, pct(d.coverage.coverage)), h("div", {}, t("coverage"))),
      card("toReview", counts.toReview, "#/visits?review_status=submitted"), card("openConflicts", counts.openConflicts, "#/conflicts")),
    h("h2", { id: "cov-h" }, t("coverageByTown")),
    h("div", { class: "table-wrap" }, h("table", { "aria-labelledby": "cov-h", id: "coverage-by-town" },
      h("thead", {}, h("tr", {}, [t("town"), t("coverage"), t("overdueCount")].map((x) => h("th", { scope: "col" }, x)),
        h("td", { "aria-hidden": "true" }))),
      h("tbody", {}, covRows))),
    h("h2", { id: "month-h" }, t("visitsPerMonth")),
    h("div", { class: "table-wrap" }, h("table", { "aria-labelledby": "month-h", id: "visits-per-month" },
      h("thead", {}, h("tr", {}, [t("month"), ...kinds.map((k) => t(k)), t("total_")].map((x) => h("th", { scope: "col" }, x)),
        h("td", { "aria-hidden": "true" }))),
      h("tbody", {}, monthRows))),
    h("p", { class: "muted" }, t("dashNote", { asOf: f.as_of, from: f.from, to: f.to })));
  sizeBars(root);
  pollDashboard();
  return view(root);
}

// ---- provincial delivery (admins): status, lag, parked messages, replay, pause.
function duration(seconds) {
  if (seconds < 60) return t("durS", { n: seconds });
  if (seconds < 3600) return t("durM", { n: Math.floor(seconds / 60) });
  if (seconds < 86400) return t("durH", { n: Math.floor(seconds / 3600) });
  return t("durD", { n: Math.floor(seconds / 86400) });
}

async function deliveriesPage() {
  const base = "/api/v1/integration/admin";
  const [s, parked] = await Promise.all([api("GET", base + "/status"), api("GET", base + "/parked?limit=100")]);
  const post = async (path, done) => {
    try {
      const r = await api("POST", base + path);
      toast(done(r));
      route();
    } catch (e) { toast(t("failed") + ": " + errText(e)); }
  };
  const replayedMsg = (r) => t("replayed", { n: r.replayed.length });
  const count = (key) => h("div", { class: "card" + (key === "parked" && s.parked ? " alarm" : "") },
    h("div", { class: "n", "data-count": key }, String(s[key])), h("div", {}, t(key)));
  const rows = parked.map((m) => h("tr", { "data-delivery": m.id },
    h("td", {}, label(m.kind), h("div", { class: "muted" }, h("code", {}, m.id))),
    h("td", {}, h("code", {}, m.aggregate_id)),
    h("td", { "data-attempts": "" }, String(m.attempts)),
    h("td", {}, m.last_status_code == null ? t("noAnswer") : String(m.last_status_code)),
    h("td", { class: "error-text" }, m.last_error || "—"),
    h("td", {}, fmtTime(m.last_attempt_at)), h("td", {}, fmtTime(m.created_at)),
    h("td", {}, h("button", { class: "btn", type: "button", "data-replay": m.id,
      "aria-label": `${t("replay")}: ${label(m.kind)} ${m.id}`,
      onclick: () => post(`/deliveries/${m.id}/replay`, replayedMsg) }, t("replay")))));
  return view(
    h("h1", {}, t("deliveries")),
    h("section", { class: "panel", "aria-labelledby": "state-h" },
      h("h2", { id: "state-h" }, t("deliveryState")),
      h("p", { id: "delivery-state", class: s.paused || !s.endpoint_configured ? "error" : "" },
        !s.endpoint_configured ? t("noEndpoint") : s.paused ? t("paused") : t("running")),
      h("div", { class: "actions" },
        s.paused
          ? h("button", { class: "btn", type: "button", id: "resume", onclick: () => post("/resume", () => t("saved")) }, t("resume"))
          : h("button", { class: "btn danger", type: "button", id: "pause", onclick: () => post("/pause", () => t("saved")) }, t("pause")),
        h("button", { class: "btn secondary", type: "button", id: "refresh", onclick: () => route() }, t("refresh")))),
    h("div", { class: "cards" }, ["pending", "delivering", "delivered", "parked", "blocked_by_parked"].map(count)),
    fields([
      [t("lag"), h("span", { id: "lag" }, s.lag_seconds ? duration(s.lag_seconds) : t("lagNone"))],
      [t("oldestUndelivered"), s.oldest_undelivered_at ? fmtTime(s.oldest_undelivered_at) : null],
      [t("lastDelivered"), s.last_delivered_at ? fmtTime(s.last_delivered_at) : null],
    ]),
    h("h2", { id: "parked-h" }, t("parkedList")),
    h("p", { class: "muted" }, t("parkedHelp")),
    h("div", { class: "actions" },
      h("button", { class: "btn", type: "button", id: "replay-all", disabled: parked.length === 0,
        onclick: () => post("/replay-parked", replayedMsg) }, t("replayAll"))),
    table([t("message"), t("record"), t("attempts"), t("lastStatus"), t("lastError"), t("lastAttempt"), t("written"), t("action")], rows));
}

// ==== Reports, the register, accounts and phones (district admins; the
// reports for supervisors too). Their words, merged into T.
const T_ADMIN = {
  zh: {
    reports: "统计报表", users: "账号管理", devices: "设备管理",
    fromMonth: "起始月份", toMonth: "截止月份", query: "查询", periodShown: "统计期间：{from} 至 {to}（截至 {asOf}）",
    periodOrder: "起始月份不能晚于截止月份。", csv: "下载 CSV", xlsx: "下载 Excel", downloading: "正在下载…", downloaded: "已下载 {name}",
    repCoverage: "走访覆盖率（各镇、各村）", repOverdue: "逾期未走访儿童", repVisits: "按走访方式和月份统计的走访",
    repRegister: "纳入与退出保障", repNeeds: "需求台账未办结事项", repBenefits: "基本生活费发放合计",
    childrenN: "在册儿童", visitedN: "周期内已走访", overdueN: "逾期", notYetDue: "新纳入未到期", wholeTown: "（全镇）",
    trackedN: "在册 {n} 人", overdueOf: "逾期 {n} 人", neverVisited: "从未走访 {n} 人", totalVisits: "共 {n} 次走访",
    addedN: "纳入 {n} 人", exitedN: "退出 {n} 人", source: "来源", reason: "原因", director_: "儿童主任",
    openN: "待办", inProgressN: "进行中", pastDue: "已超期", openSummary: "待办 {open} 项，进行中 {ip} 项，已超期 {pd} 项",
    needsAllTime: "未选统计期间：包括所有仍未办结的事项。", childrenPaid: "发放人数", standard: "标准（元/月）", totalCny: "合计（元）",
    benefitSum: "合计 {n} 元", yuan: "元", dueDateCol: "应访日期", registeredOn: "纳入日期",
    villageSearch: "搜索村（社区）", choose: "请选择", chooseVillage: "请选择村（社区）",
    register: "变更登记", registerHelp: "变更通过与手机相同的同步写入，记入保障登记变动，并在下次同步时到达相关村的手机。",
    changeCategory: "变更类别", transfer: "迁移到其他村（社区）", toVillage: "迁入村（社区）", exitTitle: "退出保障",
    exitReason: "退出原因", exitDate: "退出生效日期", readd: "重新纳入保障", doChange: "保存类别", doTransfer: "迁移", doExit: "退出保障",
    sameCategory: "类别未变化。", chooseTarget: "请选择迁入的村（社区）。", needReason: "请选择退出原因和生效日期。",
    addChild: "新增儿童", gender: "性别", male: "男", female: "女", doAdd: "纳入保障", required: "请填写必填项：{f}",
    refused: "未能保存：{why}", currentStatus: "当前状态", active: "在册", exitedState: "已退出保障",
    newUser: "新建账号", displayName: "姓名", role: "角色", orgUnit: "所属单位", accountState: "账号状态",
    enabled: "正常", disabledState: "已停用", manage: "管理", editUser: "管理账号：{name}", save: "保存",
    disable: "停用账号", enable: "启用账号", resetPassword: "重置密码", newPassword: "新密码（至少 10 位）",
    passwordShort: "密码至少需要 10 位。", usernameTaken: "用户名“{name}”已被其他账号使用，请换一个用户名。", create: "创建", role_director: "儿童主任", role_supervisor: "儿童督导员",
    role_admin: "区民政局管理员", role_integration: "省级平台接口", moveHint: "儿童主任迁到其他村后，其手机下次同步时会清除原村儿童并接收新村儿童。",
    passwordSet: "密码已重置，该账号需用新密码重新登录。", userCreated: "账号已创建", searchUsers: "用户名或姓名",
    deviceName: "设备名称", account: "账号", lastSeen: "最近使用", registered: "登记时间",
    dev_active: "使用中", dev_retired: "已停用（已更换）", dev_lost: "已报失", dev_wiped: "已清除", dev_revoked: "已注销",
    confirmLost: "确定将设备“{name}”报失吗？报失后该设备立即无法使用，下次联网时清除本机数据（包括尚未上传的记录）。",
    confirmDisable: "确定停用账号 {name} 吗？该账号的所有设备将立即退出登录。",
    markLost: "报失", retire: "停用（已更换）", deviceReason: "原因（记入审计）", thisBrowser: "当前浏览器",
    devicesHelp: "报失：该设备立即无法使用并清除数据。停用（已更换）：该设备先上传未同步的记录，再清除数据。",
    reason_role_not_allowed: "您的角色无权修改此项。", reason_invalid_value: "填写的值不符合要求。",
    reason_missing_required_field: "缺少必填项。", reason_out_of_scope: "该儿童或目标村（社区）不在您的管辖范围内。",
    reason_record_deleted: "该儿童记录已删除。", reason_record_not_found: "未找到该儿童记录。",
    reason_id_exists: "该记录已存在，请刷新页面。", reason_future_base_version: "记录版本有误，请刷新页面后重试。",
    reason_other: "提交的内容有误（{reason}）。", backToList: "返回账号列表", nothingChanged: "没有修改。",
    consoleDevice: "工作台（浏览器）", unnamedDevice: "未命名设备",
  },
  en: {
    reports: "Reports", users: "Accounts", devices: "Phones",
    fromMonth: "From month", toMonth: "To month", query: "Show", periodShown: "Period: {from} to {to} (as of {asOf})",
    periodOrder: "The first month must not be after the last.", csv: "Download CSV", xlsx: "Download Excel", downloading: "Downloading…", downloaded: "Downloaded {name}",
    repCoverage: "Visit coverage (towns and villages)", repOverdue: "Children overdue for a visit", repVisits: "Visits by kind and month",
    repRegister: "Added to and exited from the register", repNeeds: "Open needs-ledger items", repBenefits: "Benefit totals",
    childrenN: "Children", visitedN: "Visited in interval", overdueN: "Overdue", notYetDue: "New, not yet due", wholeTown: "(whole town)",
    trackedN: "{n} on the register", overdueOf: "{n} overdue", neverVisited: "{n} never visited", totalVisits: "{n} visits",
    addedN: "{n} added", exitedN: "{n} exited", source: "Source", reason: "Reason", director_: "Director",
    openN: "Open", inProgressN: "In progress", pastDue: "Past due", openSummary: "{open} open, {ip} in progress, {pd} past due",
    needsAllTime: "No period chosen: every item still open counts.", childrenPaid: "Children paid", standard: "Standard (CNY/month)", totalCny: "Total (CNY)",
    benefitSum: "{n} CNY in all", yuan: "CNY", dueDateCol: "Due", registeredOn: "Registered",
    villageSearch: "Search villages", choose: "Choose", chooseVillage: "Choose a village",
    register: "Change the register", registerHelp: "Changes go through the same sync as the phones, are recorded as register events and reach the villages' phones at their next sync.",
    changeCategory: "Change category", transfer: "Transfer to another village", toVillage: "New village", exitTitle: "Exit from the register",
    exitReason: "Reason", exitDate: "Effective date", readd: "Add to the register again", doChange: "Save category", doTransfer: "Transfer", doExit: "Exit",
    sameCategory: "The category did not change.", chooseTarget: "Choose the village to move to.", needReason: "Choose a reason and an effective date.",
    addChild: "Add a child", gender: "Gender", male: "Male", female: "Female", doAdd: "Add to the register", required: "Fill in: {f}",
    refused: "Not saved: {why}", currentStatus: "Status", active: "On the register", exitedState: "Exited",
    newUser: "New account", displayName: "Name", role: "Role", orgUnit: "Org unit", accountState: "State",
    enabled: "Active", disabledState: "Disabled", manage: "Manage", editUser: "Manage account: {name}", save: "Save",
    disable: "Disable account", enable: "Enable account", resetPassword: "Reset password", newPassword: "New password (10 characters or more)",
    passwordShort: "A password needs at least 10 characters.", usernameTaken: "The username “{name}” is taken by another account; choose another.", create: "Create", role_director: "Director", role_supervisor: "Supervisor",
    role_admin: "District admin", role_integration: "Provincial platform", moveHint: "A director moved to another village: at their phone's next sync the old village's children are purged and the new village's arrive.",
    passwordSet: "Password reset: the account signs in again with it.", userCreated: "Account created", searchUsers: "Username or name",
    deviceName: "Device", account: "Account", lastSeen: "Last seen", registered: "Registered",
    dev_active: "Active", dev_retired: "Retired (replaced)", dev_lost: "Lost", dev_wiped: "Wiped", dev_revoked: "Revoked",
    confirmLost: "Report the device “{name}” lost? It stops working at once and is wiped the next time it connects, records not yet uploaded included.",
    confirmDisable: "Disable the account {name}? Every device of the account is signed out at once.",
    markLost: "Report lost", retire: "Retire (replaced)", deviceReason: "Reason (audited)", thisBrowser: "this browser",
    devicesHelp: "Lost: refused at once and wiped. Retired (replaced): sends its unsynced records first, then wipes.",
    backToList: "Back to the list", nothingChanged: "Nothing changed.",
    consoleDevice: "Console (browser)", unnamedDevice: "Unnamed device",
  },
};
Object.assign(T.zh, T_ADMIN.zh);
Object.assign(T.en, T_ADMIN.en);

const CATEGORIES = ["institutional_orphan", "scattered_orphan", "de_facto_unsupported", "in_difficulty", "left_behind", "migrant", "low_income_edge"];
const EXIT_REASONS = ["turned_18", "adopted", "moved_away", "died", "no_longer_eligible", "other"];
const byCode = (a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0);
// A text with its values as unbreakable pieces (a date never splits at
// its hyphens).
const tNodes = (key, vars) => t(key).split(/(\{\w+\})/).map((part) => {
  const m = /^\{(\w+)\}$/.exec(part);
  return m && vars[m[1]] != null ? h("span", { class: "nowrap" }, String(vars[m[1]])) : part;
});
// "A (B)" as each language writes it: 甲一村（甲镇）, 甲一村 (甲镇).
const paren = (a, b) => (lang === "zh" ? `${a}（${b}）` : `${a} (${b})`);
const num = (n) => (n == null ? "—" : Number(n).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB"));
const todayInDistrict = () => new Date().toLocaleDateString("sv-SE", { timeZone: districtZone() });

// A select without the "all" choice, for forms that change something.
function choice(name, options, value, labelText, extra) {
  return h("label", {}, labelText,
    h("select", { name, id: (extra && extra.id) || "c-" + name, required: true },
      h("option", { value: "" }, t("choose")),
      options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))));
}
function field(name, labelText, attrs) {
  return h("label", {}, labelText, h("input", { name, id: (attrs && attrs.id) || "c-" + name, ...attrs }));
}
// A village's name as people tell them apart: 村名（镇名）.
function villageName(all, id) {
  const v = all.find((u) => u.id === id);
  if (!v) return id || "";
  const town = all.find((u) => u.id === v.parent_id);
  return town && v.kind === "village" ? paren(v.name, town.name) : v.name;
}

// The village picker: villages grouped by town, each shown as 村名（镇名）,
// and a search box that filters the list as one types (a single match is
// chosen). `town` limits it to one town, `exclude` leaves a village out,
// `allowAll` adds the "all" choice of a filter form.
function villagePicker(all, { name = "village", id = "f-village", value = "", town = null, exclude = null, allowAll = false, labelText = t("village") } = {}) {
  const towns = all.filter((u) => u.kind === "town" && (!town || u.id === town)).sort(byCode);
  const villagesOf = (tid) => all.filter((u) => u.kind === "village" && u.parent_id === tid && u.id !== exclude).sort(byCode);
  const select = h("select", { name, id, required: !allowAll });
  const search = h("input", { type: "search", id: id + "-search", autocomplete: "off", "aria-controls": id, placeholder: t("villageSearch") });
  let chosen = value || "";
  const fill = () => {
    const q = search.value.trim();
    const matches = [];
    const groups = towns.map((tw) => {
      const vs = villagesOf(tw.id).filter((v) => !q || v.name.includes(q) || tw.name.includes(q));
      matches.push(...vs);
      return vs.length ? h("optgroup", { label: tw.name }, vs.map((v) => h("option", { value: v.id }, paren(v.name, tw.name)))) : null;
    });
    if (q && matches.length === 1) chosen = matches[0].id;
    select.replaceChildren(h("option", { value: "" }, allowAll ? t("all") : t("chooseVillage")), ...groups.filter(Boolean));
    select.value = matches.some((v) => v.id === chosen) ? chosen : "";
  };
  select.addEventListener("change", () => { chosen = select.value; });
  search.addEventListener("input", fill);
  fill();
  return h("div", { class: "village-picker" },
    h("label", {}, t("villageSearch"), search),
    h("label", { for: id }, labelText, select));
}

// ---- the console as a registered device: its clock and its pushes.
function newUuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((n) => n.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
// A hybrid logical clock as sync-core writes it (wall ms, 15 digits; counter,
// 8 hex digits; the device id without dashes), kept per device in
// localStorage so it never runs backwards.
const HLC_SKEW_MS = 5 * 60 * 1000;
function hlcState(dev) { return (localStorage.getItem("seedling.hlc." + dev) || "0-0").split("-").map(Number); }
function hlcTick(dev) {
  let [wall, counter] = hlcState(dev);
  const now = Date.now();
  if (now > wall) { wall = now; counter = 0; } else counter += 1;
  localStorage.setItem("seedling.hlc." + dev, `${wall}-${counter}`);
  return `${String(wall).padStart(15, "0")}-${counter.toString(16).padStart(8, "0")}-${dev.replace(/-/g, "")}`;
}
function hlcObserve(dev, text) {
  const [w, c] = String(text).split("-");
  const wall = Number(w), counter = parseInt(c, 16);
  if (!Number.isFinite(wall) || wall > Date.now() + HLC_SKEW_MS) return; // a clock too far ahead is not adopted
  const [mine, mineCounter] = hlcState(dev);
  if (wall > mine || (wall === mine && counter > mineCounter)) localStorage.setItem("seedling.hlc." + dev, `${wall}-${counter}`);
}
class PushRefused extends Error {
  constructor(reason, message) { super(message || reason); this.reason = reason; }
}
function adminErr(e) {
  if (e instanceof PushRefused) {
    if (lang !== "zh") return t("refused", { why: e.message });
    return t("refused", { why: T.zh["reason_" + e.reason] || t("reason_other", { reason: e.reason }) });
  }
  return errText(e);
}
// One change to a child's register entry, pushed through POST
// /api/v1/sync/push like a phone's (the district is a writer of these
// fields). `pending` keeps an unanswered mutation, so pressing the button
// again after a network failure resends the same mutation id and the
// server answers it once.
async function pushChild(pending, op, recordId, baseVersion, values) {
  const dev = deviceId(session.user.username);
  const key = JSON.stringify([op, recordId, baseVersion, values]);
  if (!pending.mutation || pending.key !== key) {
    const hlc = hlcTick(dev);
    pending.key = key;
    pending.mutation = {
      mutation_id: newUuid(), entity: "child", record_id: recordId, op, base_version: baseVersion, hlc,
      fields: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { hlc, value: v }])),
    };
  }
  const res = await api("POST", "/api/v1/sync/push", {
    protocol_version: 1, device_id: dev, device_hlc: hlcTick(dev), mutations: [pending.mutation],
  });
  pending.mutation = null;
  if (res.server_hlc) hlcObserve(dev, res.server_hlc);
  const r = res.results[0];
  if (r.status === "rejected") throw new PushRefused(r.reason, r.message);
  if (r.refusals && r.refusals.length) throw new PushRefused(r.refusals[0].reason, r.refusals.map((x) => `${x.field}: ${x.message}`).join("; "));
  return r;
}

// ---- downloads with the bearer token: fetch, Blob, a temporary <a download>.
async function authedFetch(path, retried) {
  const res = await fetch(path, { headers: { authorization: "Bearer " + session.token } });
  if (res.status === 401 && !retried && sessionStorage.getItem("seedling.refresh")) {
    const r = await fetch("/api/v1/auth/refresh", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: sessionStorage.getItem("seedling.refresh") }),
    });
    if (r.ok) { session.save(await r.json()); return authedFetch(path, true); }
  }
  if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
  return res;
}
async function download(path, fallback) {
  const res = await authedFetch(path);
  const disposition = res.headers.get("content-disposition") || "";
  const m = /filename\*=UTF-8''([^;]+)/i.exec(disposition) || /filename="?([^";]+)"?/i.exec(disposition);
  const name = m ? decodeURIComponent(m[1]) : fallback;
  const url = URL.createObjectURL(await res.blob());
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return name;
}

// ---- charts: Apache ECharts, vendored and served by Seedling, loaded on
// the first reports page; canvas renderer (no eval, no inline style
// attributes, so it runs under the console's CSP).
const ECHARTS_VERSION = "5.6.0";
let echartsLoading = null;
function loadECharts() {
  if (window.echarts) return Promise.resolve(window.echarts);
  if (!echartsLoading) {
    echartsLoading = new Promise((resolve, reject) => {
      const s = h("script", { src: "/console/echarts.min.js?v=" + ECHARTS_VERSION });
      s.addEventListener("load", () => resolve(window.echarts));
      s.addEventListener("error", () => { echartsLoading = null; reject(new Error("echarts")); });
      document.head.append(s);
    });
  }
  return echartsLoading;
}
let liveCharts = [];
function drawCharts(specs) {
  liveCharts.forEach((c) => c.dispose());
  liveCharts = [];
  for (const [el, option] of specs) {
    if (!el.isConnected) continue;
    const chart = window.echarts.init(el, null, { renderer: "canvas", locale: lang === "zh" ? "ZH" : "EN" });
    chart.setOption({ aria: { enabled: true }, animation: false, tooltip: { trigger: "axis" },
      grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true }, ...option });
    liveCharts.push(chart);
  }
}
window.addEventListener("resize", () => {
  liveCharts = liveCharts.filter((c) => {
    if (c.getDom().isConnected) { c.resize(); return true; }
    c.dispose();
    return false;
  });
});
const barChart = (labels, series, opts) => ({
  legend: series.length > 1 ? { top: 0 } : undefined,
  xAxis: { type: "category", data: labels, axisLabel: { hideOverlap: true } },
  // Children and visits are counted whole: no 0.5 on the axis.
  yAxis: { type: "value", minInterval: 1, ...(opts && opts.yAxis) },
  series: series.map(([name, data]) => ({ name, type: "bar", data, barMaxWidth: 48, stack: opts && opts.stack ? "total" : undefined })),
});

// ---- reports (#/reports): six reports over a chosen period, each with
// its chart, its figures and its CSV and Excel downloads.
const REPORTS = ["coverage", "overdue", "visits-by-month", "register-changes", "open-needs", "benefits"];
const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;
function reportQuery(p) {
  const q = {};
  // A month typed into the address by hand that is not one is left out.
  if (p.from && !MONTH.test(p.from)) delete p.from;
  if (p.to && !MONTH.test(p.to)) delete p.to;
  if (p.from) q.from = p.from + "-01";
  if (p.to) { const last = lastDayOf(p.to), today = todayInDistrict(); q.to = last > today ? today : last; }
  if (p.town) q.town_id = p.town;
  if (p.village) q.village_id = p.village;
  return q;
}
async function reportsPage() {
  const p = params();
  const all = await units();
  const towns = all.filter((u) => u.kind === "town").sort(byCode).map((u) => [u.id, u.name]);
  const periodErr = h("p", { class: "error", id: "period-error", role: "alert" });
  const form = h("form", { class: "filters panel", id: "report-filters", onsubmit: (e) => {
    e.preventDefault();
    const o = {};
    for (const [k, v] of new FormData(form).entries()) if (v) o[k] = v;
    if (o.from && o.to && o.from > o.to) { periodErr.textContent = t("periodOrder"); return; }
    location.hash = "#/reports?" + qs(o);
  } });
  const q = reportQuery(p);
  const badPeriod = p.from && p.to && p.from > p.to;
  const [, ...data] = badPeriod ? [] : await Promise.all([loadECharts(), ...REPORTS.map((r) => api("GET", `/api/v1/reports/${r}?` + qs(q)))]);
  const f = data.length ? data[0].filters : {};
  form.append(
    h("label", {}, t("fromMonth"), h("input", { type: "month", name: "from", id: "f-from-month", value: p.from || (f.from || "").slice(0, 7) })),
    h("label", {}, t("toMonth"), h("input", { type: "month", name: "to", id: "f-to-month", value: p.to || (f.to || "").slice(0, 7) })),
    ...(towns.length > 1 ? [select("town", towns, p.town, "town")] : []),
    villagePicker(all, { value: p.village, town: p.town || null, allowAll: true }),
    h("div", { class: "actions" }, h("button", { class: "btn", type: "submit", id: "apply-report" }, t("query")),
      h("a", { class: "btn secondary", href: "#/reports" }, t("reset"))));
  if (badPeriod) { periodErr.textContent = t("periodOrder"); return view(h("h1", {}, t("reports")), form, periodErr); }
  const [coverage, overdue, visits, register, needs, benefits] = data;
  const charts = [];
  const chart = (option) => { const el = h("div", { class: "chart", "aria-hidden": "true" }); charts.push([el, option]); return el; };
  const exportButtons = (report) => h("div", { class: "actions export" }, ["csv", "xlsx"].map((format) =>
    h("button", { class: "btn secondary", type: "button", "data-export": `${report}.${format}`, onclick: async (e) => {
      const button = e.currentTarget;
      button.disabled = true;
      toast(t("downloading"));
      try {
        const name = await download(`/api/v1/reports/${report}?` + qs({ ...q, format }), `${report}.${format}`);
        toast(t("downloaded", { name }));
      } catch (err) { toast(t("failed") + ": " + errText(err)); }
      button.disabled = false;
    } }, t(format))));
  const section = (report, titleKey, ...body) => h("section", { class: "panel report", id: "report-" + report, "aria-labelledby": `h-${report}` },
    h("div", { class: "report-head" }, h("h2", { id: `h-${report}` }, t(titleKey)), exportButtons(report)), ...body);
  const filteredList = (base, r) => base + "?" + qs(r.village_id ? { village: r.village_id } : { town: r.town_id });

  // Coverage: the chart shows the towns (or one town's villages); the
  // table every town, then its villages.
  // A supervisor's scope is one town: its chart would be one bar, so it
  // shows the town's villages, as when a town is chosen.
  const level = p.town || p.village || towns.length === 1 ? "village" : "town";
  const covBars = coverage.rows.filter((r) => r.level === level);
  const covRows = coverage.rows.map((r) => h("tr", { class: r.level === "town" ? "town-row" : null, "data-level": r.level, "data-unit": r.village_id || r.town_id },
    h("td", {}, r.town_name), h("td", {}, r.level === "town" ? t("wholeTown") : r.village_name),
    h("td", {}, String(r.children)), h("td", {}, String(r.visited_within_interval)),
    h("td", {}, r.overdue ? h("a", { href: filteredList("#/overdue", r) }, String(r.overdue)) : "0"),
    h("td", {}, String(r.not_yet_due)), h("td", { "data-coverage": "" }, pct(r.coverage))));
  const s = coverage.summary;
  // Overdue children, most overdue first.
  const odRows = overdue.rows.map((r) => h("tr", { "data-child": r.child_id },
    h("td", {}, h("a", { href: "#/child/" + r.child_id }, r.child_name)), h("td", {}, paren(r.village_name, r.town_name)),
    h("td", {}, label(r.category)), h("td", {}, r.last_visit_on || "—"), h("td", {}, r.due_date), h("td", { class: "s-overdue" }, String(r.days_overdue))));
  // Visits by month and kind; a month's total opens the log for it.
  const kinds = ["home_visit", "phone_follow_up", "school_visit", "other"];
  const vf = visits.filters;
  const monthLink = (m) => {
    const first = `${m}-01`, last = lastDayOf(m);
    return "#/visits?" + qs({ from: first < vf.from ? vf.from : first, to: last > vf.to ? vf.to : last, town: p.town, village: p.village });
  };
  const vRows = visits.rows.map((m) => h("tr", { "data-month": m.month }, h("td", {}, m.month), kinds.map((k) => h("td", {}, String(m[k]))),
    h("td", {}, h("a", { href: monthLink(m.month), "data-total": "" }, String(m.total)))));
  // Register changes, counted per month for the chart.
  const regMonths = visits.rows.map((m) => m.month);
  const perMonth = (kind) => regMonths.map((m) => register.rows.filter((r) => r.kind === kind && r.effective_date.startsWith(m)).length);
  const rRows = register.rows.map((r) => h("tr", {}, h("td", {}, r.effective_date), h("td", {}, label(r.kind)),
    h("td", {}, h("a", { href: "#/child/" + r.child_id }, r.child_name)), h("td", {}, label(r.category)),
    h("td", {}, paren(r.village_name, r.town_name)), h("td", {}, r.source === "director" ? t("director_") : label(r.source)), h("td", {}, label(r.reason) || "—")));
  // Open needs by area.
  const areas = Object.keys(needs.summary.by_needs_area || {});
  const nRows = needs.rows.map((r) => h("tr", {}, h("td", {}, paren(r.village_name, r.town_name)), h("td", {}, label(r.needs_area)),
    h("td", {}, String(r.open)), h("td", {}, String(r.in_progress)), h("td", { class: r.past_due ? "s-overdue" : null }, String(r.past_due))));
  // Benefits per month.
  const bMonths = Object.keys(benefits.summary.by_month || {}).sort();
  const bRows = benefits.rows.map((r) => h("tr", {}, h("td", {}, r.month), h("td", {}, label(r.category)), h("td", {}, String(r.children)),
    h("td", {}, num(r.standard_cny)), h("td", {}, num(r.total_cny))));
  const root = view(
    h("h1", {}, t("reports")), form, periodErr,
    h("p", { class: "muted", id: "report-period" }, tNodes("periodShown", { from: f.from, to: f.to, asOf: f.as_of })),
    section("coverage", "repCoverage",
      h("p", {}, `${t("coverage")} ${pct(s.coverage)}（${s.visited_within_interval}/${s.children}）`),
      chart({ ...barChart(covBars.map((r) => (level === "town" ? r.town_name : r.village_name)), [[t("coverage"), covBars.map((r) => (r.coverage == null ? 0 : Math.round(r.coverage * 1000) / 10))]], { yAxis: { max: 100, axisLabel: { formatter: "{value}%" } } }) }),
      table([t("town"), t("village"), t("childrenN"), t("visitedN"), t("overdueN"), t("notYetDue"), t("coverage")], covRows)),
    section("overdue", "repOverdue",
      h("p", {}, [t("trackedN", { n: overdue.summary.tracked_children }), t("overdueOf", { n: overdue.summary.overdue_children }), t("neverVisited", { n: overdue.summary.never_visited })].join(" · ")),
      table([t("name"), t("village"), t("category"), t("lastVisit"), t("dueDateCol"), t("daysOverdue")], odRows)),
    section("visits-by-month", "repVisits",
      h("p", {}, t("totalVisits", { n: visits.summary.total })),
      chart(barChart(visits.rows.map((m) => m.month), kinds.map((k) => [t(k), visits.rows.map((m) => m[k])]), { stack: true })),
      table([t("month"), ...kinds.map((k) => t(k)), t("total_")], vRows)),
    section("register-changes", "repRegister",
      h("p", {}, t("addedN", { n: register.summary.added }), " · ", t("exitedN", { n: register.summary.exited })),
      chart(barChart(regMonths, [[t("added"), perMonth("added")], [t("exited"), perMonth("exited")]])),
      table([t("effectiveDate"), t("ctype"), t("name"), t("category"), t("village"), t("source"), t("reason")], rRows)),
    section("open-needs", "repNeeds",
      h("p", {}, t("openSummary", { open: needs.summary.open, ip: needs.summary.in_progress, pd: needs.summary.past_due })),
      needs.period_applied ? null : h("p", { class: "muted" }, t("needsAllTime")),
      areas.length ? chart(barChart(areas.map(label), [[t("count"), areas.map((a) => needs.summary.by_needs_area[a])]])) : null,
      table([t("village"), t("area"), t("openN"), t("inProgressN"), t("pastDue")], nRows)),
    section("benefits", "repBenefits",
      h("p", {}, t("benefitSum", { n: num(benefits.summary.total_cny) })),
      bMonths.length ? chart(barChart(bMonths, [[t("totalCny"), bMonths.map((m) => benefits.summary.by_month[m])]])) : null,
      table([t("month"), t("category"), t("childrenPaid"), t("standard"), t("totalCny")], bRows)));
  // Drawn once the page is on screen (the router shows it after this returns).
  setTimeout(() => drawCharts(charts), 0);
  return root;
}

// ---- the register on a child's page (district admins).
function registerPanel(c, all) {
  const pending = {};
  const err = h("p", { class: "error", id: "register-error", role: "alert" });
  const change = async (values) => {
    err.textContent = "";
    try {
      await pushChild(pending, "update", c.id, c.version, values);
      toast(t("saved"));
      route();
    } catch (e) { err.textContent = adminErr(e); }
  };
  const submit = (check) => (e) => {
    e.preventDefault();
    const fd = Object.fromEntries(new FormData(e.currentTarget).entries());
    const problem = check(fd);
    if (typeof problem === "string") { err.textContent = problem; return; }
    change(problem);
  };
  if (c.status === "exited") {
    return h("section", { class: "panel", id: "register-panel", "aria-labelledby": "register-h" },
      h("h2", { id: "register-h" }, t("register")), h("p", { class: "muted" }, t("registerHelp")),
      h("form", { id: "readd-form", onsubmit: submit(() => ({ status: "active", exit_reason: null, exit_date: null })) },
        h("button", { class: "btn", type: "submit", id: "do-readd" }, t("readd"))), err);
  }
  return h("section", { class: "panel", id: "register-panel", "aria-labelledby": "register-h" },
    h("h2", { id: "register-h" }, t("register")), h("p", { class: "muted" }, t("registerHelp")),
    h("div", { class: "register-forms" },
      h("form", { id: "category-form", class: "stacked", onsubmit: submit((fd) => (fd.category && fd.category !== c.category ? { category: fd.category } : t("sameCategory"))) },
        h("h3", {}, t("changeCategory")),
        choice("category", CATEGORIES.map((k) => [k, t(k)]), c.category, t("category"), { id: "r-category" }),
        h("div", { class: "actions" }, h("button", { class: "btn", type: "submit", id: "do-category" }, t("doChange")))),
      h("form", { id: "transfer-form", class: "stacked", onsubmit: submit((fd) => (fd.village_id ? { village_id: fd.village_id } : t("chooseTarget"))) },
        h("h3", {}, t("transfer")),
        villagePicker(all, { name: "village_id", id: "r-village", exclude: c.village_id, labelText: t("toVillage") }),
        h("div", { class: "actions" }, h("button", { class: "btn", type: "submit", id: "do-transfer" }, t("doTransfer")))),
      h("form", { id: "exit-form", class: "stacked", onsubmit: submit((fd) => (fd.exit_reason && fd.exit_date ? { status: "exited", exit_reason: fd.exit_reason, exit_date: fd.exit_date } : t("needReason"))) },
        h("h3", {}, t("exitTitle")),
        choice("exit_reason", EXIT_REASONS.map((k) => [k, t(k)]), "", t("exitReason"), { id: "r-exit-reason" }),
        field("exit_date", t("exitDate"), { type: "date", id: "r-exit-date", value: todayInDistrict(), required: true }),
        h("div", { class: "actions" }, h("button", { class: "btn danger", type: "submit", id: "do-exit" }, t("doExit"))))),
    err);
}
// A register event's before and after, in words (a transfer names villages).
function registerValue(all, e, v) {
  if (v == null) return "";
  if (e.kind === "transferred") return villageName(all, v);
  if (e.kind === "added" || e.kind === "exited") return v === "active" ? t("active") : v === "exited" ? t("exitedState") : label(v);
  return label(v);
}

// ---- adding a child from the roster (district admins).
function addChildPanel(all) {
  const pending = {};
  const err = h("p", { class: "error", id: "add-child-error", role: "alert" });
  const form = h("form", { id: "add-child-form", class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = "";
    const fd = Object.fromEntries([...new FormData(form).entries()].map(([k, v]) => [k, String(v).trim()]));
    const missing = [["name", t("name")], ["birth_date", t("birth")], ["category", t("category")], ["village_id", t("village")]].filter(([k]) => !fd[k]).map(([, l]) => l);
    if (missing.length) { err.textContent = t("required", { f: missing.join("、") }); return; }
    const values = { name: fd.name, birth_date: fd.birth_date, category: fd.category, status: "active", village_id: fd.village_id };
    for (const k of ["gender", "guardian_name", "guardian_phone", "address"]) if (fd[k]) values[k] = fd[k];
    pending.id = pending.id || newUuid();
    try {
      await pushChild(pending, "create", pending.id, 0, values);
      openWithNotice("#/child/" + pending.id, t("saved"));
    } catch (e2) { err.textContent = adminErr(e2); }
  } },
    field("name", t("name") + " *", { id: "n-name", required: true, maxlength: "50" }),
    h("label", {}, t("gender"), h("select", { name: "gender", id: "n-gender" }, h("option", { value: "" }, "—"),
      h("option", { value: "male" }, t("male")), h("option", { value: "female" }, t("female")))),
    field("birth_date", t("birth") + " *", { id: "n-birth", type: "date", required: true, max: todayInDistrict() }),
    choice("category", CATEGORIES.map((k) => [k, t(k)]), "", t("category") + " *", { id: "n-category" }),
    villagePicker(all, { name: "village_id", id: "n-village", labelText: t("village") + " *" }),
    field("guardian_name", t("guardian"), { id: "n-guardian" }),
    field("guardian_phone", t("phone"), { id: "n-phone", type: "tel" }),
    field("address", t("address"), { id: "n-address" }),
    h("div", { class: "actions" }, h("button", { class: "btn", type: "submit", id: "do-add-child" }, t("doAdd"))));
  return h("details", { class: "panel", id: "add-child", open: params().add === "1" },
    h("summary", {}, t("addChild")), form, err);
}

// ---- accounts (#/users, district admins).
const ROLES = ["director", "supervisor", "admin"];
function unitField(all, role, value, prefix) {
  if (role === "director") return villagePicker(all, { name: "org_unit", id: prefix + "-village", value, labelText: t("orgUnit") });
  const kind = role === "supervisor" ? "town" : "district";
  return choice("org_unit", all.filter((u) => u.kind === kind).sort(byCode).map((u) => [u.id, u.name]), value, t("orgUnit"), { id: prefix + "-unit" });
}
async function usersPage() {
  const p = params();
  const [list, all] = await Promise.all([api("GET", "/api/v1/users"), units()]);
  const codeOf = (id) => (all.find((u) => u.id === id) || {}).code;
  const unitText = (u) => (u.org_unit.kind === "village" ? villageName(all, u.org_unit.id) : u.org_unit.name);
  const after = (msg) => { toast(msg); route(); };
  const editing = p.edit && list.find((u) => u.id === p.edit);
  let editPanel = null;
  if (editing) {
    const err = h("p", { class: "error", id: "edit-user-error", role: "alert" });
    const patch = async (body, msg) => {
      err.textContent = "";
      try { await api("PATCH", "/api/v1/users/" + editing.id, body); after(msg || t("saved")); } catch (e) { err.textContent = errText(e); }
    };
    const edit = h("form", { id: "edit-user-form", class: "filters", onsubmit: (e) => {
      e.preventDefault();
      const fd = Object.fromEntries(new FormData(edit).entries());
      const body = {};
      if (fd.display_name.trim() && fd.display_name.trim() !== editing.display_name) body.display_name = fd.display_name.trim();
      if (fd.org_unit && fd.org_unit !== editing.org_unit.id) body.org_unit_code = codeOf(fd.org_unit);
      if (!Object.keys(body).length) { err.textContent = t("nothingChanged"); return; }
      patch(body);
    } },
      field("display_name", t("displayName"), { id: "u-display-name", value: editing.display_name, required: true, maxlength: "100" }),
      editing.role === "integration" ? null : unitField(all, editing.role, editing.org_unit.id, "u"),
      h("div", { class: "actions" }, h("button", { class: "btn", type: "submit", id: "do-save-user" }, t("save"))));
    const pw = h("form", { id: "password-form", class: "filters", onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = "";
      const value = pw.password.value;
      if (value.length < 10) { err.textContent = t("passwordShort"); return; }
      try { await api("POST", `/api/v1/users/${editing.id}/password`, { password: value }); after(t("passwordSet")); } catch (e2) { err.textContent = errText(e2); }
    } },
      field("password", t("newPassword"), { id: "u-password", type: "password", autocomplete: "new-password", minlength: "10", required: true }),
      h("div", { class: "actions" }, h("button", { class: "btn", type: "submit", id: "do-password" }, t("resetPassword"))));
    const self = editing.id === (session.user || {}).id;
    editPanel = h("section", { class: "panel", id: "edit-user", "aria-labelledby": "edit-user-h" },
      h("h2", { id: "edit-user-h" }, t("editUser", { name: paren(editing.display_name, editing.username) })),
      h("p", {}, label("role_" + editing.role), " · ", unitText(editing), " · ", editing.active ? t("enabled") : t("disabledState")),
      editing.role === "director" ? h("p", { class: "muted" }, t("moveHint")) : null,
      edit, pw,
      h("div", { class: "actions" },
        self ? null : h("button", { class: "btn " + (editing.active ? "danger" : ""), type: "button", id: "do-toggle-user",
          onclick: () => {
            // Disabling signs every device of the account out at once: asked first.
            if (editing.active && !window.confirm(t("confirmDisable", { name: paren(editing.display_name, editing.username) }))) return;
            patch({ active: !editing.active });
          } }, editing.active ? t("disable") : t("enable")),
        h("a", { class: "btn secondary", href: "#/users" }, t("backToList"))),
      err);
  }
  // Creating an account: the unit field follows the role.
  const createErr = h("p", { class: "error", id: "new-user-error", role: "alert" });
  const unitSlot = h("div", { class: "unit-slot" }, unitField(all, "director", "", "nu"));
  const roleSelect = h("select", { name: "role", id: "nu-role", onchange: () => unitSlot.replaceChildren(unitField(all, roleSelect.value, "", "nu")) },
    ROLES.map((r) => h("option", { value: r }, t("role_" + r))));
  const create = h("form", { id: "new-user-form", class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    createErr.textContent = "";
    const fd = Object.fromEntries([...new FormData(create).entries()].map(([k, v]) => [k, String(v).trim()]));
    const missing = [["username", t("username")], ["display_name", t("displayName")], ["org_unit", t("orgUnit")]].filter(([k]) => !fd[k]).map(([, l]) => l);
    if (missing.length) { createErr.textContent = t("required", { f: missing.join("、") }); return; }
    if (create.password.value.length < 10) { createErr.textContent = t("passwordShort"); return; }
    try {
      const made = await api("POST", "/api/v1/users", { username: fd.username, display_name: fd.display_name, role: fd.role, org_unit_code: codeOf(fd.org_unit), password: create.password.value });
      openWithNotice("#/users?edit=" + made.id, t("userCreated"));
    } catch (e2) {
      // 409 here is the username: the one thing two accounts cannot share.
      createErr.textContent = e2 instanceof ApiError && e2.status === 409 ? t("usernameTaken", { name: fd.username }) : errText(e2);
    }
  } },
    field("username", t("username"), { id: "nu-username", required: true, autocomplete: "off", maxlength: "64" }),
    field("display_name", t("displayName"), { id: "nu-display-name", required: true, maxlength: "100" }),
    h("label", {}, t("role"), roleSelect), unitSlot,
    field("password", t("newPassword"), { id: "nu-password", type: "password", autocomplete: "new-password", minlength: "10", required: true }),
    h("div", { class: "actions" }, h("button", { class: "btn", type: "submit", id: "do-create-user" }, t("create"))));
  // The list, filtered in the page (a district has a few hundred accounts).
  const needle = (p.q || "").trim();
  const shown = list.filter((u) => (!p.role || u.role === p.role) && (!needle || u.username.includes(needle) || u.display_name.includes(needle) || unitText(u).includes(needle)));
  const filters = h("form", { class: "filters panel", onsubmit: (e) => {
    e.preventDefault();
    const o = {};
    for (const [k, v] of new FormData(e.currentTarget).entries()) if (v) o[k] = v;
    location.hash = "#/users?" + qs(o);
  } },
    select("role", [...ROLES, "integration"].map((r) => [r, t("role_" + r)]), p.role, "role"),
    h("label", {}, t("searchUsers"), h("input", { name: "q", id: "f-q", value: p.q || "" })),
    h("div", { class: "actions" }, h("button", { class: "btn", type: "submit" }, t("filter")), h("a", { class: "btn secondary", href: "#/users" }, t("reset"))));
  const rows = shown.map((u) => h("tr", { "data-user": u.id, "data-username": u.username },
    h("td", {}, u.username), h("td", {}, u.display_name), h("td", {}, t("role_" + u.role)), h("td", { "data-unit": "" }, unitText(u)),
    h("td", {}, h("span", { class: "badge " + (u.active ? "s-approved" : "s-returned") }, u.active ? t("enabled") : t("disabledState"))),
    h("td", {}, h("a", { href: "#/users?edit=" + u.id, class: "manage-user" }, t("manage")))));
  return view(h("h1", {}, t("users")), editPanel,
    h("details", { class: "panel", id: "new-user", open: !editing && p.new === "1" }, h("summary", {}, t("newUser")), create, createErr),
    filters, h("p", {}, t("total", { n: shown.length })),
    table([t("username"), t("displayName"), t("role"), t("orgUnit"), t("accountState"), t("action")], rows));
}

// ---- phones (#/devices, district admins): mark one lost or retired.
async function devicesPage() {
  const [list, users] = await Promise.all([api("GET", "/api/v1/devices"), api("GET", "/api/v1/users")]);
  const mine = session.user ? deviceId(session.user.username) : "";
  const person = (d) => { const u = users.find((x) => x.id === d.user_id); return [u ? u.display_name : "", h("div", { class: "muted nowrap" }, d.username)]; };
  const deviceLabel = (name) => (name === "console" ? t("consoleDevice") : name === "unnamed device" ? t("unnamedDevice") : name);
  const rows = list.map((d) => {
    const reason = h("input", { name: "reason", "aria-label": `${t("deviceReason")}: ${d.name}`, placeholder: t("deviceReason"), maxlength: "500" });
    const set = async (state) => {
      try {
        await api("PUT", `/api/v1/devices/${d.id}/state`, { state, reason: reason.value.trim() || undefined });
        toast(t("saved"));
        route();
      } catch (e) { toast(t("failed") + ": " + errText(e)); }
    };
    const actions = d.state === "active" && d.id !== mine
      ? h("div", { class: "actions" }, reason,
        h("button", { class: "btn danger", type: "button", "data-lost": d.id,
          // A phone reported lost is wiped at its next contact: asked first.
          onclick: () => { if (window.confirm(t("confirmLost", { name: deviceLabel(d.name) }))) set("lost"); } }, t("markLost")),
        h("button", { class: "btn secondary", type: "button", "data-retire": d.id, onclick: () => set("retired") }, t("retire")))
      : d.id === mine ? h("span", { class: "muted" }, t("thisBrowser")) : null;
    return h("tr", { "data-device": d.id },
      h("td", {}, deviceLabel(d.name)), h("td", {}, person(d)),
      h("td", { "data-state": d.state }, h("span", { class: "badge " + (d.state === "active" ? "s-approved" : "s-returned") }, t("dev_" + d.state))),
      h("td", {}, fmtTime(d.last_seen_at) || "—"), h("td", {}, fmtTime(d.created_at)), h("td", {}, actions));
  });
  return view(h("h1", {}, t("devices")), h("p", { class: "muted" }, t("devicesHelp")),
    h("p", {}, t("total", { n: list.length })),
    table([t("deviceName"), t("account"), t("state"), t("lastSeen"), t("registered"), t("action")], rows));
}

// ---- router.
// Each navigation gets a number; a page whose data arrives after the user
// has moved on (a slow answer overtaken by a later hash change) is dropped
// instead of rendering over the page the user is on now.
let navigation = 0;
function page(parts) {
  switch (parts[0]) {
    case "visits": return visitsPage();
    case "visit": return visitPage(parts[1]);
    case "conflicts": return conflictsPage();
    case "overdue": return childrenPage(true);
    case "children": return childrenPage(false);
    case "child": return childPage(parts[1]);
    case "deliveries": return deliveriesPage();
    case "reports": return reportsPage();
    case "users": return usersPage();
    case "devices": return devicesPage();
    default: return dashboardPage();
  }
}
async function route() {
  const current = ++navigation;
  clearInterval(poller);
  const hash = location.hash || "#/dashboard";
  const path = hash.slice(1).split("?")[0];
  const parts = path.split("/").filter(Boolean);
  if (!session.token && parts[0] !== "login") { location.hash = "#/login"; return; }
  chrome(parts[0]);
  if (parts[0] === "login") { loginPage(); return; }
  show(h("p", { class: "muted" }, t("loading")));
  let nodes;
  try {
    nodes = await page(parts);
  } catch (e) {
    nodes = view(h("h1", {}, t("failed")), h("p", { class: "error", role: "alert" }, e.status === 404 ? t("notFound") : e.status === 403 ? t("forbidden") : errText(e)));
  }
  if (current === navigation) show(...nodes);
}

// A notice belongs to the page it was raised on: a new page clears it.
window.addEventListener("hashchange", () => {
  clearNotice();
  if (carriedNotice) { toast(carriedNotice); carriedNotice = null; }
  route();
});
document.addEventListener("DOMContentLoaded", () => {
  $("#menu").addEventListener("click", () => {
    const open = $("#top").classList.toggle("open");
    $("#menu").setAttribute("aria-expanded", String(open));
  });
  $("#lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("seedling.lang", lang); route(); });
  $("#signout").addEventListener("click", () => {
    // Signed out here at once; the server revokes the refresh token even if
    // the user navigates away before it answers (keepalive).
    const refresh = sessionStorage.getItem("seedling.refresh") || "";
    session.clear(); unitsCache = null; location.hash = "#/login";
    fetch("/api/v1/auth/logout", {
      method: "POST", keepalive: true, headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: refresh }),
    }).catch(() => { /* signed out locally anyway */ });
  });
  route();
});
