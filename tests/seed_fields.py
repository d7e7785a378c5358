"""What the seed documents say, copied field by field, so the fidelity checks run without ../shared.

`test_seed_files_parse_into_the_inline_table` re-parses ../shared/seeds (where present) and fails if this
table drifts from them.
"""

from __future__ import annotations

from typing import NamedTuple


class SeedField(NamedTuple):
    """One field of a seed: where it goes, its type word as the seed spells it, and its constraints."""

    operation: str  # catalog id: "<spec file stem>.<operationId>"
    location: str  # "path", "header", "body" or "response:<status>"
    name: str  # dotted for nested body fields; "[]" marks an array ("expand[]")
    type: str  # the seed's type word ("String", "int32", ...); "" where the seed gives none
    required: bool
    description: str  # the seed's text; the spec's description must start with it
    valid_values: bool = False  # the seed has a "Valid values:" list (emptied in the copy)
    default: str | None = None
    enum: tuple[int | str, ...] | None = None
    minimum: int | None = None
    max_length: int | None = None


# The catalog ids the seed endpoints must have.
SEED_IDS = {
    "chargebee.record_refund",
    "chargebee.refund_invoice",
    "stripe.report_payment_record_refund",
    "geins.create_order_refund",
    "zoho-billing.refund_credit_note",
    "zoho-billing.refund_payment",
    "zoho-billing.get_credit_note_refund",
}

SEED_FILES = {
    "000": "000_db5919c63909238a.txt",
    "001": "001_e43263b29e691eb5.txt",
    "002": "002_e2e1c173ab69fdb1.txt",
    "003": "003_ea665855b7601d19.txt",
    "004": "004_fd3369836aacc294.txt",
}

# Seed key -> (catalog id, method, path) of the operations it describes.
CATALOG = {
    "000": (("chargebee.record_refund", "post", "/invoices/{invoice-id}/record_refund"),),
    "001": (("chargebee.refund_invoice", "post", "/invoices/{invoice-id}/refund"),),
    "002": (("stripe.report_payment_record_refund", "post", "/v1/payment_records/{id}/report_refund"),),
    "003": (("geins.create_order_refund", "post", "/API/Order/{orderId}/Refund"),),
    "004": (
        ("zoho-billing.refund_credit_note", "post", "/creditnotes/{creditnote_id}/refunds"),
        ("zoho-billing.refund_payment", "post", "/payments/{payment_id}/refunds"),
        ("zoho-billing.get_credit_note_refund", "get", "/creditnotes/refunds/{refund_id}"),
    ),
}

SEED_SERVERS = {
    "chargebee.record_refund": (
        "{protocol}://{site}.{environment}:{port}/api/v1",
        "{protocol}://{site}-test.{environment}:{port}/api/v1",
    ),
    "chargebee.refund_invoice": ("https://{site}.chargebee.com/api/v2",),
    "stripe.report_payment_record_refund": ("https://api.stripe.com/",),
    "zoho-billing.refund_credit_note": ("https://www.zohoapis.com/billing/v1",),
    "zoho-billing.refund_payment": ("https://www.zohoapis.com/billing/v1",),
    "zoho-billing.get_credit_note_refund": ("https://www.zohoapis.com/billing/v1",),
}

# Seed 001 is prose and lost the input names; in order of appearance they are these (the vendor v2 names).
SEED_001_NAMES = ("refund_amount", "customer_notes")

# Values the seeds list as an empty "Valid values:", filled from the vendor documents.
_EVENT_HEADERS = ("chargebee-event-webhook", "chargebee-event-actions", "chargebee-event-email")
VENDOR_ENUMS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("chargebee.record_refund", "body", "transaction.payment_method"): (
        "cash",
        "check",
        "chargeback",
        "bank_transfer",
        "other",
    ),
    ("stripe.report_payment_record_refund", "body", "processor_details.type"): ("custom",),
    ("stripe.report_payment_record_refund", "body", "outcome"): ("refunded",),
    **{
        (op, "header", h): ("all-disabled",)
        for op in ("chargebee.record_refund", "chargebee.refund_invoice")
        for h in _EVENT_HEADERS
    },
}

SEED_FIELDS: tuple[SeedField, ...] = (
    # chargebee.record_refund
    SeedField(
        "chargebee.record_refund",
        "path",
        "invoice-id",
        "String",
        True,
        "",
    ),
    SeedField(
        "chargebee.record_refund",
        "header",
        "chargebee-request-origin-device",
        "String",
        False,
        "The device from which the customer has made the request",
    ),
    SeedField(
        "chargebee.record_refund",
        "header",
        "Content-Type",
        "String",
        True,
        "The media type of the request body.",
        default="application/x-www-form-urlencoded",
    ),
    SeedField(
        "chargebee.record_refund",
        "header",
        "chargebee-event-webhook",
        "String",
        False,
        "skip only webhooks",
        valid_values=True,
    ),
    SeedField(
        "chargebee.record_refund",
        "header",
        "chargebee-event-actions",
        "String",
        False,
        "skip all actions to be done on the events",
        valid_values=True,
    ),
    SeedField(
        "chargebee.record_refund",
        "header",
        "chargebee-request-origin-user",
        "String",
        False,
        (
            "The email address of your customer/user. Use this when the email address has "
            "only ASCII characters."
        ),
    ),
    SeedField(
        "chargebee.record_refund",
        "header",
        "chargebee-request-origin-ip",
        "String",
        False,
        "The IP address of the customer where the request originated",
    ),
    SeedField(
        "chargebee.record_refund",
        "header",
        "chargebee-request-origin-user-encoded",
        "String",
        False,
        (
            "The Base64-encoded email address of your customer/user. Use this if the email "
            "address has UTF-8 characters. When this header is provided, the header "
            "chargebee-request-origin-user is ignored."
        ),
    ),
    SeedField(
        "chargebee.record_refund",
        "header",
        "chargebee-event-email",
        "String",
        False,
        "skip only emails",
        valid_values=True,
    ),
    SeedField(
        "chargebee.record_refund",
        "body",
        "transaction",
        "Object",
        False,
        "Parameters for transaction",
    ),
    SeedField(
        "chargebee.record_refund",
        "body",
        "transaction.reference_number",
        "String",
        False,
        "The reference number for this transaction. For example, the check number when",
    ),
    SeedField(
        "chargebee.record_refund",
        "body",
        "transaction.amount",
        "Integer",
        False,
        (
            "The amount to be refunded (for online payments) or recorded as refunded (for "
            "offline payments). If not specified, the entire refundable amount for this "
            "invoice is refunded. The refundable amount is the total amount paid (and not "
            "already refunded) for the invoice. Note: Any"
        ),
    ),
    SeedField(
        "chargebee.record_refund",
        "body",
        "transaction.payment_method",
        "String",
        True,
        "The payment method of this transaction",
        valid_values=True,
    ),
    SeedField(
        "chargebee.record_refund",
        "body",
        "transaction.date",
        "Integer",
        True,
        "Indicates when this transaction occurred.",
    ),
    SeedField(
        "chargebee.record_refund",
        "body",
        "memo",
        "String",
        True,
        "Remarks, if any, on the refund.",
    ),
    # chargebee.refund_invoice
    SeedField(
        "chargebee.refund_invoice",
        "body",
        "refund_amount",
        "integer",
        False,
        "The amount to be refunded.",
        minimum=1,
    ),
    SeedField(
        "chargebee.refund_invoice",
        "body",
        "customer_notes",
        "string",
        False,
        ("The Customer Notes to be filled in the Credit Notes created to capture this refund detail."),
        max_length=2000,
    ),
    # stripe.report_payment_record_refund
    SeedField(
        "stripe.report_payment_record_refund",
        "path",
        "id",
        "String",
        True,
        "The ID of the Payment Record.",
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "header",
        "Content-Type",
        "String",
        True,
        "The media type of the request body.",
        default="application/x-www-form-urlencoded",
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "refunded",
        "Object",
        True,
        "Information about the payment attempt refund.",
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "refunded.refunded_at",
        "Integer",
        True,
        "",
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "amount",
        "Object",
        False,
        (
            "A positive integer in the smallest currency unit representing how much of this "
            "payment to refund. Can refund only up to the remaining, unrefunded amount of the "
            "payment."
        ),
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "amount.value",
        "Integer",
        True,
        "",
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "amount.currency",
        "String",
        True,
        "",
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "expand[]",
        "Array",
        False,
        "Specifies which fields in the response should be expanded.",
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "initiated_at",
        "Integer",
        False,
        "When the reported refund was initiated. Measured in seconds since the Unix epoch.",
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "metadata",
        "",
        False,
        (
            "Set of key-value pairs that you can attach to an object. This can be useful for "
            "storing additional information about the object in a structured format. "
            "Individual keys can be unset by posting an empty value to them. All keys can be "
            "unset by posting an empty value to"
        ),
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "processor_details",
        "Object",
        True,
        "Processor information for this refund.",
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "processor_details.custom",
        "Object",
        False,
        "",
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "processor_details.custom.refund_reference",
        "String",
        True,
        "",
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "processor_details.type",
        "String",
        True,
        "",
        valid_values=True,
    ),
    SeedField(
        "stripe.report_payment_record_refund",
        "body",
        "outcome",
        "String",
        True,
        "The outcome of the reported refund.",
        valid_values=True,
    ),
    # geins.create_order_refund
    SeedField(
        "geins.create_order_refund",
        "path",
        "orderId",
        "int32",
        True,
        "The order id.",
    ),
    SeedField(
        "geins.create_order_refund",
        "body",
        "OrderRowId",
        "int32",
        False,
        ("The order row that this refund row represents. Commonly used with returns. Optional."),
    ),
    SeedField(
        "geins.create_order_refund",
        "body",
        "Reference",
        "string",
        False,
        "An custom reference for the refund. Optional.",
    ),
    SeedField(
        "geins.create_order_refund",
        "body",
        "Description",
        "string",
        False,
        "A description of the refund. Optional.",
    ),
    SeedField(
        "geins.create_order_refund",
        "body",
        "Author",
        "string",
        False,
        "The name of author of the refund. Optional.",
    ),
    SeedField(
        "geins.create_order_refund",
        "body",
        "RefundAmount",
        "double",
        True,
        "The refund amount. Required.",
    ),
    SeedField(
        "geins.create_order_refund",
        "body",
        "ToBalance",
        "boolean",
        False,
        "If true, will refund the amount to the customer's balance.",
    ),
    SeedField(
        "geins.create_order_refund",
        "body",
        "Settled",
        "boolean",
        False,
        (
            "If true, the refund will be marked as settled immediatley and won't trigger a "
            "refund event. This can be useful if the refund needs to be created "
            "retroactively, or when the money transacation has already occured."
        ),
    ),
    SeedField(
        "geins.create_order_refund",
        "body",
        "RefundType",
        "int32",
        False,
        (
            "What kind of source transaction the refund is derived from. 0 = Default. A "
            "regular refund of the order or order row. 1 = InstanceCost. Return cost type, "
            "used in drawing cost for instance. 2 = Shipping. Refund shipping type, used to "
            "refund shipping. 3 = InvoiceFee. Refund invoice fee."
        ),
        enum=(0, 1, 2, 3),
    ),
    SeedField(
        "geins.create_order_refund",
        "body",
        "SkipRefundEvents",
        "boolean",
        False,
        "If true, will skip sending refund events.",
    ),
    SeedField(
        "geins.create_order_refund",
        "body",
        "RefundsRequireApproval",
        "boolean",
        False,
        (
            "If set to true, refunds will require approval before being sent. Only applies if "
            "Settled is false."
        ),
    ),
    SeedField(
        "geins.create_order_refund",
        "response:200",
        "Resource",
        "uuid",
        False,
        "The resource on which the action was taken.",
    ),
    SeedField(
        "geins.create_order_refund",
        "response:200",
        "Message",
        "string",
        False,
        "A status message for the action taken.",
    ),
    SeedField(
        "geins.create_order_refund",
        "response:200",
        "Details",
        "string[]",
        False,
        "Any validation messages for the data on the current action.",
    ),
    SeedField(
        "geins.create_order_refund",
        "response:400",
        "Resource",
        "uuid",
        False,
        "The resource on which the action was taken.",
    ),
    SeedField(
        "geins.create_order_refund",
        "response:400",
        "Message",
        "string",
        False,
        "A status message for the action taken.",
    ),
    SeedField(
        "geins.create_order_refund",
        "response:400",
        "Details",
        "string[]",
        False,
        "Any validation messages for the data on the current action.",
    ),
    SeedField(
        "geins.create_order_refund",
        "response:404",
        "Resource",
        "uuid",
        False,
        "The resource on which the action was taken.",
    ),
    SeedField(
        "geins.create_order_refund",
        "response:404",
        "Message",
        "string",
        False,
        "A status message for the action taken.",
    ),
    SeedField(
        "geins.create_order_refund",
        "response:404",
        "Details",
        "string[]",
        False,
        "Any validation messages for the data on the current action.",
    ),
    # zoho-billing.refund_credit_note
    SeedField(
        "zoho-billing.refund_credit_note",
        "body",
        "amount",
        "double",
        True,
        "The amount to be refund.",
    ),
    SeedField(
        "zoho-billing.refund_credit_note",
        "body",
        "description",
        "string",
        False,
        "A small description about the refund.",
    ),
    # zoho-billing.refund_payment
    SeedField(
        "zoho-billing.refund_payment",
        "body",
        "amount",
        "double",
        True,
        "The amount to be refund.",
    ),
    SeedField(
        "zoho-billing.refund_payment",
        "body",
        "description",
        "string",
        False,
        "A small description about the refund.",
    ),
)
