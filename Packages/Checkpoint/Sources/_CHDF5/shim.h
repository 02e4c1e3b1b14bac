#pragma once
#include <hdf5.h>
// HDF5's type ids and flags are macros that call H5open() first; Swift cannot import them, so
// each is wrapped in a static inline function.
static inline hid_t sl_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t sl_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t sl_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t sl_h5t_native_uint16(void) { return H5T_NATIVE_UINT16; }
static inline hid_t sl_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t sl_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t sl_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t sl_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t sl_h5s_all(void) { return H5S_ALL; }
static inline unsigned sl_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned sl_h5f_acc_excl(void) { return H5F_ACC_EXCL; }
static inline unsigned sl_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned sl_h5f_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline size_t sl_h5t_variable(void) { return H5T_VARIABLE; }
static inline hid_t sl_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t sl_h5t_std_u16le(void) { return H5T_STD_U16LE; }
static inline hid_t sl_h5t_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t sl_h5p_file_create(void) { return H5P_FILE_CREATE; }
static inline hid_t sl_h5p_group_create(void) { return H5P_GROUP_CREATE; }
static inline hid_t sl_h5e_default(void) { return H5E_DEFAULT; }

// The type of the link `name` in `loc` (H5L_TYPE_HARD, _SOFT, _EXTERNAL), or -1. H5Lget_info is a
// versioned macro in HDF5 >= 1.12; here the C compiler resolves it for whichever API is installed.
static inline int sl_link_type(hid_t loc, const char *name) {
    H5L_info_t info;
    if (H5Lget_info(loc, name, &info, H5P_DEFAULT) < 0) return -1;
    return (int)info.type;
}

// Turns off HDF5's advisory file locking on `fapl` where the library supports it (1.10.7+, 1.12.1+), so that
// files on filesystems without flock (some network mounts) open; writers here never share a file.
static inline herr_t sl_disable_file_locking(hid_t fapl) {
#if H5_VERS_MAJOR > 1 || H5_VERS_MINOR > 12 || (H5_VERS_MINOR == 12 && H5_VERS_RELEASE >= 1) || \
    (H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)
    return H5Pset_file_locking(fapl, 0, 1);
#else
    (void)fapl;
    return 0;
#endif
}
