//! Server-side constructors: a session opened or resumed on a pending link.

use std::time::Instant;

use super::StableEndpoint;
use crate::stable::secret::{random, session_secret, verify_proof};
use crate::stable::{Frame, PendingLink, Role, SessionId, StableConfig, StableError};

impl StableEndpoint {
    /// Server: a new session opened by `link` (whose request was
    /// [`LinkRequest::Open`](crate::stable::LinkRequest::Open)), with a fresh random id. The caller
    /// enforces its own session limit and checks the id is not in use (a collision of 128 random
    /// bits).
    pub fn open_server(
        config: StableConfig,
        link: &PendingLink,
        now: Instant,
    ) -> Result<Self, StableError> {
        let id = SessionId(random()?);
        let share = random::<32>()?;
        let mut endpoint = StableEndpoint::new(Role::Server, config, now);
        endpoint.session_id = Some(id);
        endpoint.secret = Some(session_secret(id, &link.link_key, &share));
        endpoint.link_generation = 1;
        endpoint.link_key = link.link_key.clone();
        endpoint.control.push_back(Frame::Opened {
            session_id: id,
            share,
        });
        endpoint.bind(0);
        Ok(endpoint)
    }

    /// Server: moves this session onto `link` if the resume `proof` checks out (see the
    /// module docs); its old link is forgotten. On an error the session is untouched and a
    /// refusal is queued on `link` when the client should learn why; [`StableError::Expired`]
    /// means the session is over (forget it).
    pub fn resume_server(
        &mut self,
        link: &mut PendingLink,
        proof: &[u8; 32],
        next_expected: u64,
        now: Instant,
    ) -> Result<(), StableError> {
        let result = self.check_and_attach(link, proof, next_expected, now);
        if let Err(error) = &result {
            link.refuse_for(error);
        }
        result
    }

    fn check_and_attach(
        &mut self,
        link: &PendingLink,
        proof: &[u8; 32],
        next_expected: u64,
        now: Instant,
    ) -> Result<(), StableError> {
        self.handle_timeout(now);
        if self.is_over() {
            return Err(StableError::Expired);
        }
        let (Some(id), Some(secret)) = (self.session_id, &self.secret) else {
            return Err(StableError::UnknownSession);
        };
        if self.role != Role::Server
            || !verify_proof(
                secret,
                id,
                &link.nonce,
                next_expected,
                &link.link_key,
                proof,
            )
        {
            return Err(StableError::BadProof);
        }
        self.attach(now, next_expected, &link.link_key)
    }
}
