//! serde bridge: any `Serialize` type into a DataFrame and any `Deserialize` type out of one.

use super::DataFrame;

/// A value could not be converted between a Rust type and a DataFrame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SerdeError(String);

impl DataFrame {
    /// Converts any serializable value into a frame.
    pub fn from_serialize<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, SerdeError> {
        let json = serde_json::to_value(value).map_err(|error| SerdeError(error.to_string()))?;
        Ok(DataFrame::new().with(json))
    }

    /// Converts the frame into any deserializable type.
    pub fn deserialize_into<T: serde::de::DeserializeOwned>(&self) -> Result<T, SerdeError> {
        let json = self.reader().read_json().map_err(|error| SerdeError(error.to_string()))?;
        serde_json::from_value(json).map_err(|error| SerdeError(error.to_string()))
    }
}
