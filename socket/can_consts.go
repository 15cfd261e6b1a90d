package socket

// AF_CAN constants with Linux's values (include/uapi/linux/can.h,
// can/raw.h, can/isotp.h, can/bcm.h).
const (
	AF_CAN = 29
	PF_CAN = AF_CAN

	CAN_RAW    = 1
	CAN_BCM    = 2
	CAN_ISOTP  = 6
	CAN_NPROTO = 8

	SOL_CAN_BASE  = 100
	SOL_CAN_RAW   = SOL_CAN_BASE + CAN_RAW
	SOL_CAN_ISOTP = SOL_CAN_BASE + CAN_ISOTP

	CAN_RAW_FILTER        = 1
	CAN_RAW_ERR_FILTER    = 2
	CAN_RAW_LOOPBACK      = 3
	CAN_RAW_RECV_OWN_MSGS = 4
	CAN_RAW_FD_FRAMES     = 5
	CAN_RAW_JOIN_FILTERS  = 6
	CAN_RAW_FILTER_MAX    = 512

	CAN_EFF_FLAG   = 0x80000000
	CAN_RTR_FLAG   = 0x40000000
	CAN_ERR_FLAG   = 0x20000000
	CAN_SFF_MASK   = 0x000007FF
	CAN_EFF_MASK   = 0x1FFFFFFF
	CAN_ERR_MASK   = 0x1FFFFFFF
	CAN_INV_FILTER = 0x20000000 // in a filter's id: match what does not match

	CAN_MTU   = 16
	CANFD_MTU = 72
	CANFD_BRS = 0x01
	CANFD_ESI = 0x02

	SO_TIMESTAMP   = 29
	SO_TIMESTAMPNS = 35

	// Receive flags a CAN_RAW socket reports: the frame was sent from
	// this host (MSG_DONTROUTE), by this very socket (MSG_CONFIRM).
	MSG_DONTROUTE = 0x4
	MSG_CONFIRM   = 0x800
)
