//! Native Lua modules (`skynet.core`, `skynet.socketdriver`, `skynet.netpack`,
//! `sproto.core`, `skynet.crypt`, ...), registered in each service's `package.preload` by
//! [`crate::lua::host`]. Hot-path functions are raw `lua_CFunction`s over `mlua::ffi`.

pub mod bson;
pub mod cluster;
pub(crate) mod core;
pub mod crypt;
pub(crate) mod datasheet;
pub mod debugchannel;
pub(crate) mod ltls;
pub mod md5;
pub(crate) mod memory;
pub mod mongo;
pub(crate) mod multicast;
pub mod mysqlaux;
pub mod netpack;
pub(crate) mod profile;
pub mod seri;
pub(crate) mod sharedata;
pub(crate) mod sharedoc;
pub(crate) mod snapshot;
pub(crate) mod socketdriver;
pub mod sproto;
pub(crate) mod stm;

use mlua::ffi::lua_CFunction;
use std::ffi::CStr;

/// Modules of the socket, sproto and crypt layers, by `require` name.
pub(crate) const EXTRA_PRELOADS: &[(&CStr, lua_CFunction)] = &[
    (c"skynet.netpack", netpack::luaopen_skynet_netpack),
    (c"netpack", netpack::luaopen_skynet_netpack),
    (
        c"skynet.socketdriver",
        socketdriver::luaopen_skynet_socketdriver,
    ),
    (c"socketdriver", socketdriver::luaopen_skynet_socketdriver),
    (c"sproto.core", sproto::luaopen_sproto_core),
    (c"snapshot", snapshot::luaopen_snapshot),
    (c"skynet.crypt", crypt::luaopen_skynet_crypt),
    (c"skynet.cluster.core", cluster::luaopen_skynet_cluster_core),
    (c"bson", bson::luaopen_bson),
    (
        c"skynet.debugchannel",
        debugchannel::luaopen_skynet_debugchannel,
    ),
    (c"skynet.mongo.driver", mongo::luaopen_skynet_mongo_driver),
    (
        c"skynet.multicast.core",
        multicast::luaopen_skynet_multicast_core,
    ),
    (c"skynet.stm", stm::luaopen_skynet_stm),
    (c"ltls.c", ltls::luaopen_ltls_c),
    (c"ltls.init.c", ltls::luaopen_ltls_init_c),
    (c"skynet.mysqlaux", mysqlaux::luaopen_skynet_mysqlaux),
    (c"md5", md5::luaopen_md5),
    (c"skynet.mysqlaux.c", mysqlaux::luaopen_skynet_mysqlaux),
    (
        c"skynet.sharedata.core",
        sharedata::luaopen_skynet_sharedata_core,
    ),
    (
        c"skynet.datasheet.core",
        datasheet::luaopen_skynet_datasheet_core,
    ),
    (
        c"skynet.sharetable.core",
        sharedata::luaopen_skynet_sharetable_core,
    ),
];
