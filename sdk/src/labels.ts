/**
 * Codes and their Chinese labels for the field app, from shared/GLOSSARY.md:
 * the mandatory-reporting (强制报告) risk flags, the due states, the local
 * visit states, visit kinds, child categories and needs areas.
 */

import type { DueState, LocalVisitState, SyncState } from './types.ts';

/** Risk flags that fall under mandatory reporting: an item with one of these `kind`s is `urgent: true`. */
export const URGENT_RISK_FLAGS = [
  'sexual_abuse',
  'physical_abuse',
  'self_harm',
  'abandonment',
  'missing_or_trafficked',
  'forced_begging',
  'other_serious_harm',
] as const;

/** Every risk flag code with its label and whether it is urgent. */
export const RISK_FLAGS: readonly { code: string; label: string; urgent: boolean }[] = [
  { code: 'sexual_abuse', label: '疑似遭受性侵害', urgent: true },
  { code: 'physical_abuse', label: '疑似遭受家庭暴力、虐待、殴打或欺凌', urgent: true },
  { code: 'self_harm', label: '自杀、自残风险或非正常伤残', urgent: true },
  { code: 'abandonment', label: '被遗弃或长期无人照料', urgent: true },
  { code: 'missing_or_trafficked', label: '来源不明、失踪或疑似被拐卖', urgent: true },
  { code: 'forced_begging', label: '被组织乞讨', urgent: true },
  { code: 'other_serious_harm', label: '其他严重侵害身心健康的情形', urgent: true },
  { code: 'guardianship_gap', label: '监护缺失或监护能力不足', urgent: false },
  { code: 'dropout_risk', label: '辍学或失学风险', urgent: false },
  { code: 'untreated_illness', label: '患病未及时就医', urgent: false },
  { code: 'psychological_distress', label: '情绪或心理困扰', urgent: false },
  { code: 'unsafe_housing', label: '住房或居住安全隐患', urgent: false },
];

/** The hint shown with an urgent flag. */
export const MANDATORY_REPORTING_HINT = '强制报告：发现疑似侵害未成年人情形，应立即向公安机关报案，并报告督导员和区民政局。';

export function isUrgentRiskFlag(kind: string): boolean {
  return (URGENT_RISK_FLAGS as readonly string[]).includes(kind);
}

/** Labels of `sync_core::semantic::DueStatus` states. */
export const DUE_STATE_LABELS: Record<DueState, string> = {
  upcoming: '未到期',
  due_today: '今日到期',
  overdue: '逾期未走访',
  not_tracked: '不再跟踪',
};

export const LOCAL_VISIT_STATE_LABELS: Record<LocalVisitState, string> = {
  draft: '草稿',
  waiting: '待上传',
  synced: '已上传，待审核',
  returned: '退回修改',
  approved: '审核通过',
};

export const SYNC_STATE_LABELS: Record<SyncState, string> = {
  idle: '已同步',
  offline: '离线：记录已保存在手机上，有网络时自动上传',
  syncing: '正在同步…',
  error: '同步出错，稍后自动重试',
  update_required: '请更新应用',
  revoked: '此手机已被停用，本机数据已清除',
  signed_out: '未登录',
  locked: '已锁定：请输入PIN码',
};

export const VISIT_KIND_LABELS: Record<string, string> = {
  home_visit: '入户走访',
  phone_follow_up: '电话回访',
  school_visit: '学校走访',
  other: '其他',
};

export const CATEGORY_LABELS: Record<string, string> = {
  institutional_orphan: '集中供养孤儿',
  scattered_orphan: '社会散居孤儿',
  de_facto_unsupported: '事实无人抚养儿童',
  in_difficulty: '困境儿童',
  left_behind: '留守儿童',
  migrant: '流动儿童',
  low_income_edge: '低保边缘家庭儿童',
};

export const NEED_AREA_LABELS: Record<string, string> = {
  living: '生活保障',
  study: '学业辅导',
  psychology: '心理疏导',
  health: '健康',
  safety: '安全',
};
