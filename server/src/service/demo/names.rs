//! Generated names and short texts for the demo district: people, villages,
//! schools, phone numbers and visit notes. Every name is assembled from
//! common characters at random; none is a real person's.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Common surnames in eastern Zhejiang.
const SURNAMES: &[&str] = &[
    "王", "陈", "张", "李", "周", "吴", "徐", "孙", "胡", "朱", "林", "毛", "邬", "竺", "蒋", "俞",
    "沈", "杨", "应", "袁", "方", "夏", "叶", "钱", "董", "何", "郑", "舒", "黄", "汪",
];

const GIVEN_CHILD: &[&str] = &[
    "子", "涵", "梓", "宇", "浩", "欣", "怡", "睿", "佳", "思", "雨", "轩", "晨", "一", "诺", "可",
    "馨", "博", "文", "若", "嘉", "泽", "俊", "悦", "琪", "瑶", "航", "安", "乐", "彤", "心", "煜",
    "铭", "萱", "辰", "朵",
];

const GIVEN_ADULT: &[&str] = &[
    "国", "建", "伟", "芳", "丽", "军", "明", "华", "红", "英", "平", "强", "敏", "杰", "霞", "勇",
    "燕", "海", "波", "娟", "忠", "秀", "兰", "峰", "春", "林", "静", "亚", "飞", "琴",
];

const VILLAGE_FIRST: &[&str] = &[
    "东", "西", "南", "北", "上", "下", "大", "小", "新", "前", "后", "石", "山", "溪", "桥", "塘",
    "岭", "竹", "桃", "柏", "湖", "沙", "高", "长", "白", "青", "金", "马", "龙", "凤", "茶", "松",
    "杨", "梅", "花", "泉",
];

const VILLAGE_SECOND: &[&str] = &[
    "岙", "山", "溪", "桥", "头", "岭", "塘", "坑", "洋", "浦", "门", "口", "岗", "田", "湾", "林",
    "园", "陈", "张", "王", "家", "峰", "墩", "坞",
];

const COMMUNITY_SECOND: &[&str] = &["苑", "园", "城", "安", "兴", "华", "和", "阳", "景", "丰"];

/// A person's name: surname plus one or two given-name characters.
pub(crate) fn person_name(rng: &mut ChaCha8Rng, surname: Option<&str>, child: bool) -> String {
    let surname = surname.unwrap_or_else(|| pick(rng, SURNAMES));
    let pool = if child { GIVEN_CHILD } else { GIVEN_ADULT };
    let mut name = surname.to_owned();
    name.push_str(pick(rng, pool));
    if rng.gen_bool(if child { 0.75 } else { 0.5 }) {
        name.push_str(pick(rng, pool));
    }
    name
}

/// The surname of a generated name.
pub(crate) fn surname_of(name: &str) -> &str {
    name.char_indices()
        .nth(1)
        .map_or(name, |(end, _)| &name[..end])
}

/// A village (`…村`) or, when `community`, a community (`…社区`) name.
pub(crate) fn village_name(rng: &mut ChaCha8Rng, community: bool) -> String {
    let first = pick(rng, VILLAGE_FIRST);
    if community {
        format!("{first}{}社区", pick(rng, COMMUNITY_SECOND))
    } else {
        format!("{first}{}村", pick(rng, VILLAGE_SECOND))
    }
}

/// An 11-digit mobile number starting with 1.
pub(crate) fn phone(rng: &mut ChaCha8Rng) -> String {
    let second = pick(rng, &["3", "5", "7", "8", "9"]);
    format!("1{second}{:09}", rng.gen_range(0..1_000_000_000u32))
}

/// The school a child of `age` attends, by the name of their town.
pub(crate) fn school(rng: &mut ChaCha8Rng, town: &str, age: i32) -> Option<String> {
    let short = town.trim_end_matches("街道").trim_end_matches('镇');
    match age {
        ..=2 => None,
        3..=5 => Some(format!("{short}中心幼儿园")),
        6..=11 => Some(format!("{short}中心小学")),
        12..=14 => Some(format!("{short}初级中学")),
        _ => Some(
            pick(
                rng,
                &[
                    "奉化中学",
                    "奉化第二中学",
                    "奉化区职业教育中心",
                    "奉化区武岭中学",
                ],
            )
            .to_owned(),
        ),
    }
}

/// Short observation notes per area, as a director would type them.
pub(crate) fn observation(rng: &mut ChaCha8Rng, area: &str) -> &'static str {
    let pool: &[&str] = match area {
        "living" => &[
            "家中整洁，生活用品齐全",
            "监护人身体尚可，能照料日常起居",
            "基本生活费按时到账，饮食正常",
            "冬衣被褥不足，已登记需求",
            "家中厨房较简陋，已提醒注意用火安全",
        ],
        "study" => &[
            "在校表现良好，按时完成作业",
            "数学成绩偏弱，希望有人辅导",
            "与班主任沟通，学习态度认真",
            "假期在家，作息基本规律",
            "上课注意力不集中，已与老师沟通",
        ],
        "health" => &[
            "身体健康",
            "近期感冒，已就医",
            "按时服药，病情稳定",
            "视力下降，建议配镜",
        ],
        "psychology" => &[
            "性格开朗，交流顺畅",
            "较为内向，不愿多谈家庭",
            "想念外出务工的父母",
            "情绪稳定，与同学相处融洽",
            "近期情绪低落，需持续关注",
        ],
        _ => &[
            "居住环境安全",
            "房屋老旧，雨季需关注",
            "已讲解防溺水知识",
            "已讲解交通安全和防电信诈骗知识",
        ],
    };
    pick(rng, pool)
}

/// A need a visit records, in the needs-ledger areas.
pub(crate) fn need(rng: &mut ChaCha8Rng, area: &str) -> &'static str {
    let pool: &[&str] = match area {
        "living" => &[
            "需要冬季衣物和被褥",
            "申请临时救助",
            "家中需要安装热水器",
            "需要助学金申请协助",
        ],
        "study" => &[
            "需要课后学业辅导",
            "需要学习用品",
            "申请志愿者周末辅导数学",
            "需要英语辅导",
        ],
        _ => &[
            "需要心理疏导",
            "建议转介心理咨询师",
            "需要同伴陪伴活动",
            "需要亲子视频通话支持",
        ],
    };
    pick(rng, pool)
}

/// A supervisor's comment when returning a visit log for revision.
pub(crate) fn return_comment(rng: &mut ChaCha8Rng) -> &'static str {
    pick(
        rng,
        &[
            "请补充学习情况",
            "走访内容过于简略，请补充家庭情况",
            "请核实监护人联系电话",
            "请补充需求的具体内容",
        ],
    )
}

/// Picks one element of a non-empty slice.
pub(crate) fn pick<'a, T: ?Sized>(rng: &mut ChaCha8Rng, pool: &[&'a T]) -> &'a T {
    pool[rng.gen_range(0..pool.len())]
}
