// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title DevnetPriceFeed: a Chainlink-style price feed whose answers the devnet sets
/// @notice Answers `AggregatorV3Interface` (`decimals`, `description`, `version`,
/// `latestRoundData`, `getRoundData`) and the older `latestAnswer`, `latestTimestamp` and
/// `latestRound`. Each answer the owner records is a new round, numbered 1, 2, 3, ...: with
/// `setAnswer` it is stamped with the block's timestamp, as a fresh Chainlink report is; with
/// `setAnswerUpdatedAt` the owner names `updatedAt` (any time, in the past to make the feed look
/// stale). A round's `startedAt` equals its `updatedAt` and `answeredInRound` its own id.
/// Unknown rounds revert with "No data present", as Chainlink's aggregators do.
contract DevnetPriceFeed {
    struct Round {
        int256 answer;
        uint256 updatedAt;
    }

    uint8 public immutable decimals;
    string public description;
    address public owner;
    uint80 internal lastRoundId;
    mapping(uint80 => Round) internal rounds;

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);

    constructor(uint8 feedDecimals, string memory feedDescription, int256 initialAnswer, address feedOwner) {
        require(feedOwner != address(0), "DevnetPriceFeed: owner is the zero address");
        decimals = feedDecimals;
        description = feedDescription;
        owner = feedOwner;
        _record(initialAnswer, block.timestamp);
    }

    /// The aggregator interface's version.
    function version() external pure returns (uint256) {
        return 4;
    }

    /// Records `answer` as a new round updated now; answers the round's id.
    function setAnswer(int256 answer) external returns (uint80) {
        _onlyOwner();
        return _record(answer, block.timestamp);
    }

    /// Records `answer` as a new round updated at `updatedAt` (seconds since the epoch).
    function setAnswerUpdatedAt(int256 answer, uint256 updatedAt) external returns (uint80) {
        _onlyOwner();
        return _record(answer, updatedAt);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return getRoundData(lastRoundId);
    }

    function getRoundData(uint80 roundId)
        public
        view
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Round storage round = rounds[roundId];
        require(roundId != 0 && roundId <= lastRoundId, "No data present");
        return (roundId, round.answer, round.updatedAt, round.updatedAt, roundId);
    }

    function latestAnswer() external view returns (int256) {
        return rounds[lastRoundId].answer;
    }

    function latestTimestamp() external view returns (uint256) {
        return rounds[lastRoundId].updatedAt;
    }

    /// The id of the latest round.
    function latestRound() external view returns (uint256) {
        return lastRoundId;
    }

    function _record(int256 answer, uint256 updatedAt) internal returns (uint80 roundId) {
        roundId = lastRoundId + 1;
        rounds[roundId] = Round({answer: answer, updatedAt: updatedAt});
        lastRoundId = roundId;
        emit NewRound(roundId, msg.sender, updatedAt);
        emit AnswerUpdated(answer, roundId, updatedAt);
    }

    function _onlyOwner() internal view {
        require(msg.sender == owner, "DevnetPriceFeed: caller is not the owner");
    }
}
