//! Warning levels and the language of what people read: domain words of alerts,
//! tasks and the pipelines that configure them.

use serde::{Deserialize, Serialize};

/// Warning levels, in the Chinese emergency convention: blue (IV) … red (I).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Blue,
    Yellow,
    Orange,
    Red,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Blue, Level::Yellow, Level::Orange, Level::Red];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Blue => "blue",
            Level::Yellow => "yellow",
            Level::Orange => "orange",
            Level::Red => "red",
        }
    }

    /// `steps` levels higher, red at most.
    pub fn raised(self, steps: u8) -> Level {
        let i = Level::ALL.iter().position(|l| *l == self).unwrap_or(0);
        Level::ALL[(i + steps as usize).min(3)]
    }

    /// 蓝色, 黄色, 橙色, 红色.
    pub fn zh(self) -> &'static str {
        match self {
            Level::Blue => "蓝色",
            Level::Yellow => "黄色",
            Level::Orange => "橙色",
            Level::Red => "红色",
        }
    }
}

/// The language of alert summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Zh,
}
